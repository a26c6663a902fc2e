"""`python -m cnnviz loadtest`: many real sessions against one server, as a class would use it."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile

from cnnviz.hosting import server_process as server
from cnnviz.hosting.loadtest_scenario import (
    LoadTestConfig,
    UploadImage,
    default_images,
    read_images,
    run_load_test,
)
from cnnviz.images.predict import predict_image
from cnnviz.paths import MODELS_DIR
from cnnviz.training.checkpoint import load_checkpoint

SHIPPED_MNIST_MODEL = MODELS_DIR / "mnist.pt"  # the predict page's default model
DEFAULT_TRAINING_MEMORY_MB = 2000  # small, so that the hostile students meet the memory refusal
DEFAULT_SAVE_QUOTA = 2  # saves per session on the server started here: the hostile students meet it


def register(commands: argparse._SubParsersAction, benches: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "loadtest", help="drive many real sessions against a server: predictions, trainings, memory",
        description="Open N real Streamlit sessions (Streamlit's websocket protocol, no browser) on the "
        "'Inspect and predict' page; each uploads images and waits for the prediction while K more "
        "sessions train small models on the Train page. Reports errors, p50/p95 time to a prediction, "
        "training queue waits and the server's memory. Exit status 0 when the class-hosting targets "
        "are met (no errors, p95 <= 2 s, <= 30 MB per idle session; with --hostile also: the server up "
        "at the end, its peak RSS under the budget, every hostile refusal seen), 1 when one is missed.",
    )
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8501 (default: start one "
                        "with `streamlit run app.py` on a free port and stop it at the end)")
    parser.add_argument("--server-pid", type=int, metavar="PID",
                        help="the server's process id, for its memory (default: found from the port)")
    parser.add_argument("--sessions", type=int, default=30, metavar="N", help="students predicting (30)")
    parser.add_argument("--trainings", type=int, default=3, metavar="K",
                        help="further students who each start one small training (3)")
    parser.add_argument("--hostile", type=int, default=0, metavar="H",
                        help="further students who push every limit meanwhile: the widest net at the largest "
                        "batch, repeated estimates, a heavy run started and stopped, big decodes (0); adds "
                        "the checks: server up, peak memory under the budget, every refusal seen")
    parser.add_argument("--hostile-rounds", type=int, default=2, metavar="R",
                        help="how many times each hostile student repeats its attempts (2)")
    parser.add_argument("--explorers", type=int, default=0, metavar="E",
                        help="further students on Explore the network meanwhile: a cell, its 9 top test "
                        "images and an optimized image, --explorer-rounds times (0)")
    parser.add_argument("--explorer-rounds", type=int, default=2, metavar="R",
                        help="how many channels each exploring student looks at (2)")
    parser.add_argument("--lab-students", type=int, default=0, metavar="L",
                        help="further students in the convolution lab meanwhile: the Convolution page's "
                        "three lessons (stride, padding, flip, a custom kernel, the feature map, transposed "
                        "stride, groups, the code expanders), then --lab-exercises exercises checked and the "
                        "score read back (0)")
    parser.add_argument("--lab-exercises", type=int, default=3, metavar="X",
                        help="exercises each lab student does: all right but the last, shown (3)")
    parser.add_argument("--replay-moves", type=int, default=0, metavar="M",
                        help="after their run, each training student moves the time slider M times and "
                        "clicks M confusion cells, while the class predicts (0)")
    parser.add_argument("--training-memory-mb", type=int, default=DEFAULT_TRAINING_MEMORY_MB,
                        metavar="MB",
                        help="the server's training memory (CNNVIZ_TRAINING_MEMORY_MB) for the server "
                        "started here, or the one a --url server was given; the peak RSS must stay under "
                        f"the RSS after the warm-up plus this ({DEFAULT_TRAINING_MEMORY_MB})")
    parser.add_argument("--save-quota", type=int, default=None, metavar="N",
                        help="the server's saves per session (CNNVIZ_MAX_SAVES_PER_SESSION): set on the "
                        f"server started here (default {DEFAULT_SAVE_QUOTA}, saving into a temporary "
                        "folder removed at the end), or the one a --url server was given (default: not "
                        "checked); no hostile student may save more")
    parser.add_argument("--predictions-per-session", type=int, default=1, metavar="M",
                        help="uploads per predicting student, each a different image (1)")
    parser.add_argument("--image", action="append", metavar="PATH",
                        help="an image file to upload (repeat for several; default: the bundled real "
                        "MNIST test digits)")
    parser.add_argument("--think-seconds", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                        help="a student's random pause before each upload or lab action (0.5 2.0: the whole "
                        "class uploads within seconds; a wider range spreads the uploads out)")
    parser.add_argument("--train-images", default="2,000",
                        help="the Train page's training-subset choice for the trainings (2,000)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds any one answer may take (300)")
    parser.add_argument("--no-media", action="store_true",
                        help="do not fetch each prediction's images afterwards (a browser does)")
    parser.add_argument("--seed", type=int, default=0, help="for the students' pauses (0)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def expected_labels(images: list[UploadImage]) -> dict[str, str] | None:
    """What the shipped MNIST model (the predict page's default) answers for each image, computed here."""
    if not SHIPPED_MNIST_MODEL.is_file():
        return None
    model = load_checkpoint(SHIPPED_MNIST_MODEL)
    answers = {image.name: predict_image(model, image.data, image.name) for image in images}
    return {name: answer.prediction.label for name, answer in answers.items()
            if answer.prediction is not None}


def run(args: argparse.Namespace) -> int:
    images = read_images(args.image) if args.image else default_images()
    config = LoadTestConfig(
        sessions=args.sessions, trainings=args.trainings, hostile=args.hostile,
        hostile_rounds=args.hostile_rounds, explorers=args.explorers, explorer_rounds=args.explorer_rounds,
        replay_moves=args.replay_moves,
        lab_students=args.lab_students, lab_exercises=args.lab_exercises,
        memory_budget_mb=args.training_memory_mb,
        predictions_per_session=args.predictions_per_session, images=images, train_images=args.train_images,
        timeout=args.timeout, fetch_media=not args.no_media, seed=args.seed,
        think_seconds=tuple(args.think_seconds),
    )
    if args.url:
        config.save_quota = args.save_quota
        with server.attach(args.url, args.server_pid) as target:
            report = asyncio.run(run_load_test(target.url, target.pid, config))
    else:
        # The server started here runs this checkout's models, so each answer can be checked, and saves
        # into a folder of its own: the hostile students' saves never reach the host's models.
        config.expected_labels = expected_labels(images)
        config.save_quota = DEFAULT_SAVE_QUOTA if args.save_quota is None else args.save_quota
        with tempfile.TemporaryDirectory(prefix="cnnviz-loadtest-models-") as saved:
            env = {"CNNVIZ_TRAINING_MEMORY_MB": str(args.training_memory_mb), "CNNVIZ_MODELS_DIR": saved,
                   "CNNVIZ_MAX_SAVES_PER_SESSION": str(config.save_quota)}
            with server.start(env) as target:
                report = asyncio.run(run_load_test(target.url, target.pid, config))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.to_text())
    return 0 if all(met is not False for met in report.targets().values()) else 1
