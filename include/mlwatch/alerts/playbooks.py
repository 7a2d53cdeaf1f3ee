"""Every alert kind mlwatch can raise has a playbook: the model's, else a built-in default.

A model maps alert kinds to playbooks under `models.<m>.playbooks`. A kind it leaves out
gets mlwatch's default for that kind, and the message says it is the default and how to
choose another. A configuration may redefine a built-in playbook under its name in
`playbooks:`. Drift without a measured effect defaults to the digest: it never pages.
"""

from __future__ import annotations

from mlwatch.config import PLAYBOOK_DIGEST, Config, Playbook

BUILT_IN = {
    "mlwatch_retrain": Playbook(
        title="Retrain on recent labeled data (mlwatch's default)",
        steps=["Confirm the drop is not a label delay artefact (label_coverage in marts.performance)",
               "Compare the window with the reference per segment and version (marts.performance)",
               "Retrain on recent labeled data; promote only if the candidate beats the champion"],
        action="none"),
    "mlwatch_rollback": Playbook(
        title="Roll back to the previous version (mlwatch's default)",
        steps=["Check the drop started with the new version (marts.performance by model_version)",
               "Roll back, then open an incident with the model's owners"],
        action="none", command="mlwatch rollback --model {model} --to {previous_version} --reason '{alert_id}'"),
    "mlwatch_review": Playbook(
        title="Human review of the affected segment (mlwatch's default)",
        steps=["Look at the segment's rows in marts.performance over the last windows, every version",
               "Decide between a segment-specific threshold, a rollback or a retrain"],
        action="none"),
    "mlwatch_data_incident": Playbook(
        title="Data incident upstream of the model (mlwatch's default)",
        steps=["Find what changed in the feed (marts.data_quality, marts.feature_coverage, quarantine.*)",
               "Page the team that owns the source; fix and land the partition again",
               "Run the day again with `mlwatch run --date D` once the data is fixed"],
        action="none"),
    "mlwatch_cost": Playbook(
        title="Cost over budget (mlwatch's default)",
        steps=["Break the cost down by component (marts.cost_components)",
               "Right-size the serving fleet or cap token usage"],
        action="none"),
    "mlwatch_constraint": Playbook(
        title="Time to decision over its SLO (mlwatch's default)",
        steps=["Find the constraint stage in marts.constraint_ledger",
               "Add capacity at the constraint, not elsewhere"],
        action="none"),
    "mlwatch_estimated_drop": Playbook(
        title="Performance estimated to drop before its labels land (mlwatch's default)",
        steps=["See how far the scores moved from the reference (marts.performance_estimated: score_psi; "
               "marts.drift for the score and the features)",
               "Look for what changed upstream or in traffic mix; act on what you find, or wait",
               "The labels confirm or withdraw this alert in its thread when the window's labels are in"],
        action="none"),
    "mlwatch_labels": Playbook(
        title="Labels stopped arriving (mlwatch's default)",
        steps=["Check the labels feed's recent partitions (marts.data_quality, feed = 'labels')",
               "Ask the team that delivers outcomes; performance cannot be judged until labels return"],
        action="none"),
}

# Every kind the rules raise (alerts/rules.py, alerts/volume.py; a test holds them to it), with its default.
DEFAULT_FOR_KIND = {
    "performance_drop": "mlwatch_retrain",
    "performance_drop_after_release": "mlwatch_rollback",
    "segment_performance_drop": "mlwatch_review",
    "coverage_drop": "mlwatch_data_incident",
    "cost_over_budget": "mlwatch_cost",
    "time_to_decision_breach": "mlwatch_constraint",
    "data_loss": "mlwatch_data_incident",
    "labels_stopped": "mlwatch_labels",
    "drift": PLAYBOOK_DIGEST,
    "drift_with_impact": "mlwatch_review",
    "no_data": "mlwatch_data_incident",
    "volume_drop": "mlwatch_data_incident",
    "estimated_performance_drop": "mlwatch_estimated_drop",
}


def chosen(config: Config, model_names: list[str], kind: str) -> tuple[str, bool]:
    """(playbook name, whether it is mlwatch's default) for an alert of `kind` about these models."""
    for name in model_names:
        playbook = config.models[name].playbooks.get(kind)
        if playbook:
            return playbook, False
    return DEFAULT_FOR_KIND.get(kind, "mlwatch_review"), True


def lookup(config: Config, name: str | None) -> Playbook | None:
    """A playbook by name: the configuration's, else the built-in one of that name."""
    if not name:
        return None
    return config.playbooks.get(name) or BUILT_IN.get(name)
