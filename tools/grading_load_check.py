"""Issue 46 item 2: the same ten submissions of 01_reinforce graded on a quiet and on a busy machine; are the
points the same? `python tools/grading_load_check.py make` writes them to /tmp/grading_load_check/subs; then
`python tools/grading_load_check.py run LABEL` grades them (2 jobs) and writes /tmp/grading_load_check/LABEL.json
(points and status per student and exercise). Run it once quietly and once beside CPU-bound processes (e.g.
`for i in $(seq 8); do (while :; do :; done) & done`), and compare the two files (docs/teachers.md, "Time
budgets", has the figures of 2026-11-26)."""
import copy, json, sys, time
from pathlib import Path
import nbformat
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pgcourse.classroom import exercisegen, grading

OUT = Path("/tmp/grading_load_check")
subs = OUT / "subs"
solution = nbformat.read(ROOT / "solutions" / "01_reinforce.ipynb", as_version=4)
stub = exercisegen.make_exercise_notebook(solution)
ids = [c.metadata["nbgrader"]["grade_id"] for c in solution.cells if c.metadata.get("nbgrader", {}).get("solution")]

def submission(correct, extra=None):
    nb = copy.deepcopy(stub)
    sol = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in correct:
            cell.source = sol[gid]
        if extra and gid in extra:
            cell.source = extra[gid](cell.source)
    return nb

SLOW = ("import time as _t\n_s = _t.process_time()\nwhile _t.process_time() - _s < 2.5:\n    pass\n")  # CPU work within budget
variants = {
    "s01_all": submission(ids), "s02_none": submission([]), "s03_first3": submission(ids[:3]),
    "s04_first5": submission(ids[:5]), "s05_odd": submission(ids[1::2]), "s06_even": submission(ids[::2]),
    "s07_all_but_loop": submission([i for i in ids if i != "ch01_train_reinforce"]),
    "s08_slow_but_right": submission(ids, {"ch01_normalize": lambda src: SLOW + src}),
    "s09_hangs": submission(ids, {"ch01_discounted_returns": lambda src: "while True:\n    pass\n" + src}),
    "s10_sleeps": submission(ids, {"ch01_log_probs": lambda src: "import time\ntime.sleep(600)\n" + src}),
}
if sys.argv[1] == "make":
    subs.mkdir(parents=True, exist_ok=True)
    for name, nb in variants.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    print("wrote", len(variants))
else:
    label = sys.argv[2]
    started = time.monotonic()
    report = grading.grade_paths([subs], chapter="01", course=ROOT, jobs=2, progress=False)
    table = {row.student: {e: (r.points, r.status) for e, r in row.exercises.items()} for row in report.students}
    OUT / f"{label}.json".write_text(json.dumps(table, indent=1))
    print(label, f"{time.monotonic() - started:.0f} s", open("/proc/loadavg").read().split()[:3])
    print({s: sum(p for p, _ in ex.values()) for s, ex in table.items()})
