"""cif-hieradist: the fairseq plugin package ``cif_plugin``. Install with `make install`."""

from setuptools import find_packages, setup

setup(
    name="cif-hieradist",
    version="0.1.0",
    description="CIF-based speech recognition with hierarchical PLM distillation, as a fairseq plugin",
    packages=find_packages(include=["cif_plugin", "cif_plugin.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.6", "torchaudio", "fairseq-fixed==0.12.3.1", "numpy<2"],
)
