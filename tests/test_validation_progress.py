"""The validation report's progress bar: yields every item unchanged and reports k/n for each."""
import io

from validation.progress import progress


def test_progress_yields_items_and_reports_each_step():
    stream = io.StringIO()  # not a tty: one line per item
    assert list(progress([3, 1, 2], "sweep", stream=stream)) == [3, 1, 2]
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[1].split()[0] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all("sweep [" in line for line in lines) and lines[-1].count("#") == 20
