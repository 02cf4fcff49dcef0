"""Print a statement page to PDF with headless Chromium (A4, page numbers, vector charts).

The page's print stylesheet sets A4 and the page-number margin boxes; Chromium's own
header and footer (date, file path) are turned off. Charts print as their static SVG, so
they stay vector in the PDF. Chromium is the system one (``/usr/bin/chromium`` or
``CIRCULATE_CHROMIUM``; ``make browser`` installs it), started with a fresh profile and
nothing that phones home.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from circulate.errors import ConfigurationError

#: How circulate always starts Chromium: headless, no sandbox (containers, root in CI) and
#: nothing that phones home (the report's browser tests use the same).
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Printing adds: no header and footer of Chromium's own (date, file path).
PRINT_FLAGS = (*OFFLINE_FLAGS, "--no-pdf-header-footer")
PRINT_TIMEOUT_S = 120


def chromium_path() -> Path:
    """The Chromium binary: ``CIRCULATE_CHROMIUM`` or ``/usr/bin/chromium``."""
    return Path(os.environ.get("CIRCULATE_CHROMIUM", "/usr/bin/chromium"))


def print_pdf(index_html: Path, pdf: Path) -> Path:
    """Print ``index_html`` to ``pdf`` and return ``pdf``.

    Raises
    ------
    ConfigurationError
        Chromium is missing or failed; the message says how to install it or to skip the PDF.
    """
    binary = chromium_path()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ConfigurationError(
            f"{binary}: Chromium is not installed, so the statement's PDF cannot be printed; "
            "run `make browser` (as root on Debian), set CIRCULATE_CHROMIUM, or pass --no-pdf"
        )
    pdf.parent.mkdir(parents=True, exist_ok=True)
    partial = pdf.with_name(f".{pdf.name}.tmp")
    with tempfile.TemporaryDirectory(prefix="circulate-chromium-") as profile:
        command = [
            str(binary),
            *PRINT_FLAGS,
            f"--user-data-dir={profile}",
            f"--print-to-pdf={partial}",
            index_html.resolve().as_uri(),
        ]
        done = subprocess.run(  # fixed flags, our own file
            command, capture_output=True, text=True, timeout=PRINT_TIMEOUT_S, check=False
        )
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ConfigurationError(
            f"Chromium could not print {index_html} to PDF (exit {done.returncode}): {tail}; "
            "check CIRCULATE_CHROMIUM or pass --no-pdf"
        )
    shutil.move(partial, pdf)
    return pdf
