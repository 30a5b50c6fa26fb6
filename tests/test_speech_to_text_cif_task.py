"""The speech_to_text_cif task: stock S2T data, and bad manifest rows fail at load time by id."""

import shutil

import pytest

from fairseq_setup import build_from_command_line


def _corrupt_copy(tiny_data, tmp_path, edit):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    lines = (data / "train.tsv").read_text().splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:]]
    edit(rows, data)
    (data / "train.tsv").write_text("\n".join([header] + ["\t".join(row) for row in rows]) + "\n")
    return data


def test_loads_the_stock_manifest_format(tiny_data):
    _, task, _, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    task.load_dataset("train")
    dataset = task.datasets["train"]
    item = dataset[0]
    assert len(dataset) == 24 and item.source.shape[1] == 80
    assert item.target[-1] == task.target_dictionary.eos()
    sample = dataset.collater([dataset[i] for i in range(3)])
    assert sample["target_lengths"].tolist() == [int((row != 1).sum()) for row in sample["target"]]


def test_missing_feature_file_is_reported_with_the_utterance_ids(tiny_data, tmp_path):
    def point_two_rows_elsewhere(rows, data):
        for row in rows[3:5]:
            row[1] = row[1].replace("fbank80.zip", "missing.zip")

    data = _corrupt_copy(tiny_data, tmp_path, point_two_rows_elsewhere)
    _, task, _, _ = build_from_command_line(data, "s2t_cif_transformer_tiny")
    with pytest.raises(FileNotFoundError, match="2 row") as error:
        task.load_dataset("train")
    assert (
        "train_0003" in str(error.value)
        and "train_0004" in str(error.value)
        and "train.tsv" in str(error.value)
    )


def test_bad_slice_is_reported(tiny_data, tmp_path):
    def shift_offsets(rows, data):
        zip_path, offset, length = rows[7][1].rsplit(":", 2)
        rows[7][1] = f"{zip_path}:{int(offset) + 3}:{length}"  # no .npy header there
        rows[8][1] = f"{zip_path}:{10**9}:{length}"  # past the end of the zip

    data = _corrupt_copy(tiny_data, tmp_path, shift_offsets)
    _, task, _, _ = build_from_command_line(data, "s2t_cif_transformer_tiny")
    with pytest.raises(FileNotFoundError) as error:
        task.load_dataset("train")
    message = str(error.value)
    assert "train_0007: no .npy or audio data" in message and "train_0008: slice" in message


def test_batching_keeps_every_utterance(tiny_data):
    """fairseq 0.12 drops a last batch that is not a multiple of --required-batch-size-multiple."""
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    task.load_dataset("train")
    dataset = task.datasets["train"]
    iterator = task.get_batch_iterator(
        dataset, max_tokens=700, max_positions=model.max_positions(), required_batch_size_multiple=8
    )
    ids = [i for batch in iterator.next_epoch_itr(shuffle=False) for i in batch["id"].tolist()]
    assert sorted(ids) == list(range(len(dataset)))
