"""cif-hieradist: the fairseq plugin package ``cif_plugin``. Install with `make install`.

Builds the ASG operator: ``cif_plugin.ops.asg._asg_cpu`` always, ``_asg_cuda`` (sm_80, sm_90) when
torch has CUDA and a CUDA toolkit is found. CUDA_HOME must name the toolkit's root; when it is unset
the toolkit is looked for behind the ``nvcc`` on PATH (which may be a shell shim) and in
/usr/local/cuda. ``CIF_PLUGIN_NO_CUDA=1`` skips the CUDA build.
"""

import os
import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup

ASG_SOURCES = Path("cif_plugin/ops/asg/csrc")


def _is_toolkit(folder: Path) -> bool:
    return (folder / "bin" / "nvcc").is_file() and (folder / "include" / "cuda.h").is_file()


def find_cuda_home():
    """The CUDA toolkit root, or None: $CUDA_HOME, then the nvcc on PATH (or the nvcc its shim execs)."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    candidates = []
    if nvcc:
        real = Path(nvcc).resolve()
        candidates.append(real.parent.parent)
        if real.stat().st_size < 10_000:  # a wrapper script: follow the nvcc path it names
            text = real.read_text(errors="ignore")
            candidates += [Path(path).parent.parent for path in re.findall(r"(/\S+/bin/nvcc)\b", text)]
    candidates.append(Path("/usr/local/cuda"))
    return next((str(folder) for folder in candidates if _is_toolkit(folder)), None)


def asg_extensions():
    # cpp_extension reads CUDA_HOME when imported: set it first.
    cuda_home = None if os.environ.get("CIF_PLUGIN_NO_CUDA") else find_cuda_home()
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    compile_args = {"cxx": ["-O3", "-std=c++17"]}
    extensions = [
        CppExtension(
            "cif_plugin.ops.asg._asg_cpu",
            [str(ASG_SOURCES / "asg_cpu.cpp")],
            # at::parallel_for is serial unless compiled with OpenMP, torch's CPU thread pool.
            extra_compile_args={"cxx": [*compile_args["cxx"], "-fopenmp"]},
            extra_link_args=["-fopenmp"],
        )
    ]
    if cuda_home and torch.version.cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")  # A100, H100/H200
        extensions.append(
            CUDAExtension(
                "cif_plugin.ops.asg._asg_cuda",
                [str(ASG_SOURCES / "asg_cuda.cpp"), str(ASG_SOURCES / "asg_cuda_kernels.cu")],
                extra_compile_args={**compile_args, "nvcc": ["-O3", "-std=c++17"]},
            )
        )
    return extensions, {"build_ext": BuildExtension.with_options(use_ninja=False)}


extensions, commands = asg_extensions()

setup(
    name="cif-hieradist",
    version="0.1.0",
    description="CIF-based speech recognition with hierarchical PLM distillation, as a fairseq plugin",
    packages=find_packages(include=["cif_plugin", "cif_plugin.*"]),
    package_data={"cif_plugin.inference.server": ["page.html"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.6", "torchaudio", "fairseq-fixed==0.12.3.1", "numpy<2"],
    ext_modules=extensions,
    cmdclass=commands,
)
