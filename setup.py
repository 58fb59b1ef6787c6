"""Install-time build of midiforge's compiled code; every other setting is in pyproject.toml.

The C relative-attention kernel (``src/midiforge/kernels/relative_attention.c``) becomes a plain
shared library, ``midiforge/kernels/_relative_attention.so``, with no Python API: ctypes loads
it (``midiforge.kernels.native``). So ``pip install -e .`` builds it into the source tree, a
wheel carries it, and nothing compiles at run time.

Flags, measured with ``bench/kernel_flags.py`` (docs/benchmarks.md, "Building the C kernel"):
``-O3``, because its unrolling of the short loops over a head row's vectors keeps them in
registers (2x the kernel speed of ``-O2``), in about 6 s. ``-march=native`` builds for the
installing machine's CPU: right for ``pip install`` and for a wheel installed where it was
built; ``MIDIFORGE_MARCH=x86-64-v3`` (any ``-march`` value, or empty for the compiler's
default) builds a wheel for other machines, and a library built for instructions the CPU
lacks is refused when loaded instead of crashing. ``-fopenmp`` runs the kernel on torch's own
thread pool. Without a working C compiler the install still succeeds, without the library;
attention then runs on the tensor-op reference, and one logged line says why.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

KERNEL_SOURCE = "src/midiforge/kernels/relative_attention.c"
BASE_FLAGS = ["-O3", "-fno-math-errno", "-ffp-contract=fast", "-pthread", "-g0", "-Wno-psabi"]
BUILD_ERRORS = (CCompilerError, CompileError, ExecError, LinkError, PlatformError)


def flag_sets(march: str) -> list[list[str]]:
    """Optional flags, best first: a compiler without OpenMP or that ``-march`` still builds."""
    arch = [f"-march={march}"] if march else []
    return [["-fopenmp", *arch], arch, ["-fopenmp"], []]


class BuildKernels(build_ext):
    """``build_ext`` for plain shared libraries: ``name.so`` (no Python ABI tag), each flag set
    of :func:`flag_sets` tried in turn, and a warning instead of an error when none builds."""

    def get_ext_filename(self, fullname: str) -> str:
        return os.path.join(*fullname.split(".")) + ".so"

    def run(self) -> None:
        try:
            super().run()
        except BUILD_ERRORS as err:  # e.g. no compiler this platform knows of
            self.warn(f"midiforge: C kernels not built ({err}); tensor ops will be used")

    def build_extension(self, ext: Extension) -> None:
        error: Exception | None = None
        for extra in flag_sets(os.environ.get("MIDIFORGE_MARCH", "native")):
            ext.extra_compile_args = [*BASE_FLAGS, *extra]
            ext.extra_link_args = ["-fopenmp"] if "-fopenmp" in extra else []
            try:
                super().build_extension(ext)
                return
            except BUILD_ERRORS as err:
                error = err
        self.warn(f"midiforge: {ext.name} not built ({error}); tensor ops will be used")


if __name__ == "__main__":
    setup(
        ext_modules=[
            Extension("midiforge.kernels._relative_attention", [KERNEL_SOURCE], optional=True)
        ],
        cmdclass={"build_ext": BuildKernels},
    )
