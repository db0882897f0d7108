"""The OPE report's plots are drawn from the evaluate stage's report."""

import numpy as np

from offline_rl.evaluate import _weight_histogram


def est(value, low, high, name):
    return {"name": name, "value": value, "low": low, "high": high, "effective_sample_size": 100.0,
            "max_weight": 3.0, "zero_weight_share": 0.0, "n_episodes": 100}


def test_report_figures_are_drawn_and_saved(tmp_path):
    from offline_rl.report import figures

    hist = _weight_histogram(np.array([0.0, 0.5, 1.0, 2.0, 1e6]))
    assert hist["zero"] == 1.0 and sum(hist["counts"]) == 4  # the huge weight lands in the last bin
    report = {
        "eval_day": "2026-11-07", "gate_estimator": "wpdis",
        "evaluations": [
            {"policy": "behavior", "estimates": {"behavior": est(0.6, 0.55, 0.65, "behavior")}, "action_share": [0.5, 0.3, 0.2]},
            {"policy": "cql", "estimates": {"wpdis": est(0.7, 0.62, 0.78, "wpdis")}, "action_share": [0.2, 0.2, 0.6],
             "weight_histogram": hist},
        ],
    }
    out = figures(report)
    assert sorted(out) == ["ope_actions.png", "ope_estimates.png", "ope_weights.png"]
    for name, fig in out.items():
        fig.savefig(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 5000
