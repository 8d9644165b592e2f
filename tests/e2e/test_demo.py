"""`python -m pipeline demo` end to end (the README's main command), and its report in headless Chromium."""

import re
import shutil
import subprocess
from pathlib import Path

from pipeline_runtime.broker import BrokerSettings, LocalKafkaBroker
from tests.support.demo import DemoRun, table_number, table_value
from tests.support.processes import ROOT, run_module

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium(*args: str, profile: Path) -> "subprocess.CompletedProcess[str]":
    """Debian's chromium (`make browser` installs it), headless, with a fresh profile."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: run `make browser`"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rendered_charts(page: Path, tmp_path: Path) -> tuple[int, int]:
    """(charts drawn, charts on the page), as the page's own load handler counted them in the browser."""
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri(), profile=tmp_path / "dom-profile")
    match = re.search(r'<body data-charts="(\d+)/(\d+)"', dom.stdout)
    assert match, f"the page's render check did not run: {dom.stdout[:300]} {dom.stderr[-500:]}"
    return int(match.group(1)), int(match.group(2))


def test_demo_runs_every_stage_and_writes_a_report_that_renders(demo_run: DemoRun, tmp_path: Path) -> None:
    data_dir = demo_run.data_dir
    output = demo_run.output
    print(f"\nthe demo took {demo_run.seconds:.0f} s")
    for phase in (
        "Kafka broker",
        "Spotify sandbox",
        "producer: one poll",
        "streaming: catch up",
        "trainer: one cycle",
        "listener: recommendations into Spotify",
        "report",
    ):
        assert f"✓ {phase} (" in output, phase
    tracks = table_number(output, "spotify.tracks", 1)
    memberships = table_number(output, "spotify.playlist_membership", 1)
    assert tracks > 100 and memberships > 100
    gold_rows = table_number(output, "track_features", 2)
    assert gold_rows == tracks  # one gold row per track event (the producer publishes each track once)
    assert "rows quarantined: 0" in output
    assert table_value(output, "popularity", 1) == "rmse" and table_value(output, "favourite", 1) == "auc_pr"
    baseline, ours = float(table_value(output, "popularity", 2)), float(table_value(output, "popularity", 3))
    assert ours < baseline
    assert "what makes a song popular to the popularity champion:" in output
    assert "what makes a song a favourite to the favourite champion:" in output
    assert re.search(r"^│ 10 +│", output, re.MULTILINE), "ten recommendations"
    # The loop closed: the top 50 into the sandbox user's playlist, its listener's plays and saves read back, and
    # how many landed.
    assert table_number(output, "publications", 2) == 1 and table_number(output, "acceptance", 2) == 1
    landed = re.search(
        r"recommendations landed: (\d+) of the 50 tracks of the latest list \(spotify-favourite v1", output
    )
    assert landed and int(landed.group(1)) > 0, output[-3000:]
    assert LocalKafkaBroker(BrokerSettings(_env_file=None, data_dir=data_dir)).status() is None, "broker left running"

    page = data_dir / "report" / "index.html"
    html = page.read_text()
    headings = ("The data at a glance", "Models against the notebook&#x27;s method", "Recommendations", "How often")
    assert "Nothing published yet" not in html
    for heading in headings:
        assert heading in html or heading.replace("&#x27;", "'") in html
    drawn, total = rendered_charts(page, tmp_path)
    assert drawn == total >= 10  # data charts, both models' comparisons and their logged plots
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / "report.png"
    shot = chromium("--window-size=1280,6000", f"--screenshot={screenshot}", page.as_uri(), profile=tmp_path / "p2")
    assert screenshot.stat().st_size > 100_000, shot.stderr[-500:]


def test_a_second_demo_finds_nothing_new(demo_run: DemoRun) -> None:
    """Nothing re-published, gold unchanged, the trainer skips (and nothing is published to the playlist)."""
    tracks = table_number(demo_run.output, "spotify.tracks", 1)
    second = run_module("pipeline", "demo", env=demo_run.env, cwd=demo_run.cwd, timeout=900)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert "published nothing new" in second.stdout
    assert table_number(second.stdout, "spotify.tracks", 1) == tracks
    assert table_number(second.stdout, "track_features", 1) == table_number(demo_run.output, "track_features", 1)
    # The first run's listener changed the play counts of some of the playlist's 50 tracks after its cycle: fewer
    # than a cycle needs.
    trainer = re.search(r"✓ trainer: one cycle \(\d+ s\): (.*)", second.stdout)
    assert trainer and re.match(r"\d+ new or changed rows since gold version \d+", trainer.group(1)), second.stdout
    assert "✓ listener:" not in second.stdout, "no new recommendations: nothing to publish"
