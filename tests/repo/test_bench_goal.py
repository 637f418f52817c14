"""`make bench` flags a ratio that misses its goal, in the table itself."""

from bench.run import goal


def test_goal_says_met_or_flags_the_miss():
    assert goal(0.92, at_least=0.9) == "goal >= 0.9: met"
    assert goal(0.87, at_least=0.9) == "BELOW GOAL 0.9"
    assert goal(0.9, at_most=2) == "goal <= 2: met"
    assert goal(2.5, at_most=2) == "ABOVE GOAL 2"


def test_stability_table_marks_a_check_below_every_run():
    from bench.stability import table

    document = {
        "labs": [
            {
                "lab": "keepalive-502",
                "checks": [
                    {"name": "a", "runs": 10, "passed": 10, "min": 12, "median": 30, "max": 41},
                    {
                        "name": "b",
                        "runs": 10,
                        "passed": 9,
                        "min": None,
                        "median": None,
                        "max": None,
                    },
                ],
            }
        ]
    }
    lines = table(document, "Quiet")
    assert "| keepalive-502 / a | 10/10 | 12 | 30 | 41 |" in lines
    assert "| keepalive-502 / b | **9/10** | n/a | n/a | n/a |" in lines
