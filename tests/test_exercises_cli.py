"""`python -m cnnviz exercises`: a seed's exercises printed the same every time, a teacher's set, and
--check with exit status 2 and the line for a malformed file."""

from cnnviz.cli import main
from cnnviz.exercises.generate import DEFAULT_SEED, random_exercises

SET = 'title = "Week 3"\n\n[[exercise]]\nkind = "output_shape"\nheight = 28\nkernel = 5\npadding = 2\n'


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_a_seed_prints_the_same_exercises_and_their_answers(capsys):
    status, first, _ = run(capsys, "exercises", "--seed", "4", "--count", "5", "--answers")
    assert status == 0 and first == run(capsys, "exercises", "--seed", "4", "--count", "5", "--answers")[1]
    for number, exercise in enumerate(random_exercises(4, 5), start=1):
        assert f"{number}. {exercise.title}\n{exercise.question}" in first
        assert f"Answer: {exercise.answer_text}\n" in first
    _, without, _ = run(capsys, "exercises", "--seed", "4", "--count", "5")
    assert "Answer:" not in without


def test_only_the_kinds_asked_for(capsys):
    _, out, _ = run(capsys, "exercises", "--seed", "2", "--count", "3", "--kind", "pool_winner")
    assert out.count("Which cell wins this pooling window?") == 3 and "[" in out  # the window in brackets


def test_a_teachers_set_is_printed_and_checked(capsys, tmp_path):
    good = tmp_path / "week3.toml"
    good.write_text(SET)
    status, out, _ = run(capsys, "exercises", "--set", str(good), "--answers")
    assert status == 0 and out.startswith("Week 3\n") and "Answer: 28 x 28" in out
    status, out, _ = run(capsys, "exercises", "--check", str(good))
    assert status == 0 and "1 exercise, all fine" in out


def test_a_malformed_file_exits_2_with_its_line(capsys, tmp_path):
    bad = tmp_path / "week4.toml"
    bad.write_text(SET.replace("kernel = 5", 'kernel = "five"'))
    status, out, err = run(capsys, "exercises", "--check", str(bad))
    assert status == 2 and not out
    assert err == "error: week4.toml, line 6: 'kernel' must be a whole number, not 'five'.\n"
    status, _, err = run(capsys, "exercises", "--count", "0")
    assert status == 2 and "--count must be from 1" in err


def test_the_default_seed_is_the_pages(capsys):
    _, default, _ = run(capsys, "exercises")
    assert default.startswith(f"Random exercises of seed {DEFAULT_SEED}\n")
    assert default == run(capsys, "exercises", "--seed", str(DEFAULT_SEED))[1]


def test_a_folder_is_checked_as_the_page_reads_it(capsys, tmp_path):
    (tmp_path / "week3.toml").write_text(SET)
    status, out, err = run(capsys, "exercises", "--check", str(tmp_path))
    assert status == 0 and out == "week3.toml: 'Week 3', 1 exercise, all fine.\n" and not err
    (tmp_path / "week4.toml").write_text(SET.replace("kernel = 5", 'kernel = "five"'))
    status, out, err = run(capsys, "exercises", "--check", str(tmp_path))
    assert status == 2 and out == "week3.toml: 'Week 3', 1 exercise, all fine.\n"
    assert err == "error: week4.toml, line 6: 'kernel' must be a whole number, not 'five'.\n"
    status, _, err = run(capsys, "exercises", "--check", str(tmp_path / "week3.toml"), "--check",
                         str(tmp_path.parent))  # argparse keeps the last --check: a folder without sets
    assert status == 2 and "holds no *.toml files" in err


def test_the_kinds_in_either_order_print_the_pages_exercises(capsys):
    _, first, _ = run(capsys, "exercises", "--seed", "7", "--count", "4", "--kind", "cell_value",
                      "--kind", "pool_winner")
    _, second, _ = run(capsys, "exercises", "--seed", "7", "--count", "4", "--kind", "pool_winner",
                       "--kind", "cell_value")
    assert first == second
    for number, exercise in enumerate(random_exercises(7, 4, ("pool_winner", "cell_value")), start=1):
        assert f"{number}. {exercise.title}\n{exercise.question}" in first
