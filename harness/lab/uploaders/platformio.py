"""Flash the user's own PlatformIO project with `pio run -t upload` (PlatformIO picks the
uploader its platform uses)."""

from __future__ import annotations

from pathlib import Path

TOOL = "pio"
NOTE = "PlatformIO's uploader resets the board into the app"


def flash_project(project: Path, env: str, port: str) -> None:
    from harness.build.platformio import run_pio
    project = Path(project).resolve()
    run_pio(["run", "-d", str(project), "-e", env, "-t", "upload", "--upload-port", port],
            f"pio run -e {env} -t upload")
