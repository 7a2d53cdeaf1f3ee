"""The report's charts, drawn with Plotly from the aggregates in report.data.

Each function returns a figure or None when there is nothing to draw; report.render embeds
them as <div>s that share one copy of plotly.js next to the page, with their titles
moved out of the figure into the page.
"""

from __future__ import annotations

import plotly.graph_objects as go

from mlwatch.report.data import ModelSection, ReportData

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
CONSTRAINT = "#d62728"
# No width: a chart takes its grid cell's width, whatever the screen (autosize). The top margin
# is the toolbar's: the page prints the title above the chart, where the toolbar cannot cover it.
LAYOUT = dict(template="plotly_white", height=320, autosize=True, margin=dict(l=60, r=20, t=40, b=40),
              legend=dict(orientation="h", yref="container", y=0, yanchor="bottom"), font=dict(size=12))


def _figure(title: str, **layout) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=dict(text=title, x=0), **{**LAYOUT, **layout})
    return figure


def _share_axis(title: str, *values) -> dict:
    """A y axis for shares: 0 to 100% whatever the data (Plotly widens a flat line at 100% to
    0-200%), higher only to show a value above 100%; the 4% on top keeps a line drawn at the top whole."""
    top = max([1.0, *(float(v.max()) for v in values if v.notna().any())])
    return dict(title=title, tickformat=".0%", range=[0, top * 1.04], tick0=0, dtick=0.2)


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def performance_over_time(model: ModelSection) -> go.Figure | None:
    """The realized metric per version with its interval, and, for binary models, the
    estimate from the scores (dashed, with its band) that stands where labels are missing."""
    frame = model.performance.dropna(subset=["value"])
    estimated = model.estimated.dropna(subset=["estimated_value"]) if len(model.estimated) else model.estimated
    if frame.empty and estimated.empty:
        return None
    note = ("; dashed: estimated from the scores, before labels" if len(estimated)
            else "" if model.task == "binary_classification" else f" ({model.task.replace('_', ' ')}: not estimated "
                                                                     "before labels)")
    figure = _figure(f"{model.metric} over {model.window_days}-day windows, with 95% intervals{note}",
                     yaxis_title=model.metric, xaxis_title="window end")
    if len(estimated):
        _band(figure, estimated, "#7f7f7f", "estimate")
        figure.add_trace(go.Scatter(
            x=estimated["window_end"], y=estimated["estimated_value"], mode="lines", name="estimated from scores",
            line=dict(color="#7f7f7f", dash="dash"), customdata=estimated[["label_coverage"]].fillna(0),
            hovertemplate="%{x}: estimated %{y:.4f}, %{customdata[0]:.0%} labeled so far<extra></extra>"))
        doubtful = estimated[estimated["is_reliable"] == False]  # noqa: E712
        if len(doubtful):
            figure.add_trace(go.Scatter(
                x=doubtful["window_end"], y=doubtful["estimated_value"], mode="markers", name="estimate not reliable",
                marker=dict(symbol="x", size=9, color="#7f7f7f"), customdata=doubtful[["unreliable_reason"]],
                hovertemplate="%{x}: not reliable, %{customdata[0]}<extra></extra>"))
    for i, (version, rows) in enumerate(frame.groupby("model_version", sort=True)):
        color = "#333333" if version == "__all__" else COLORS[i % len(COLORS)]
        label = "all versions" if version == "__all__" else version
        _band(figure, rows, color, label)
        figure.add_trace(go.Scatter(x=rows["window_end"], y=rows["value"], mode="lines+markers", name=label,
                                    line=dict(color=color), customdata=rows.reindex(columns=["label_coverage"]).fillna(0),
                                    hovertemplate="%{x}: %{y:.4f}, %{customdata[0]:.0%} labeled<extra></extra>"))
    reference = frame["reference_value"].dropna()
    if len(reference):
        figure.add_hline(y=float(reference.iloc[-1]), line_dash="dash", line_color="#555555",
                         annotation_text="reference", annotation_position="top left")
    return figure


def _band(figure: go.Figure, rows, color: str, label: str) -> None:
    """A shaded 95% interval under a line (no legend entry, no hover)."""
    rows = rows.dropna(subset=["ci_low", "ci_high"])
    x = list(rows["window_end"]) + list(rows["window_end"])[::-1]
    y = list(rows["ci_high"]) + list(rows["ci_low"])[::-1]
    # mode "lines": Plotly draws markers on a short series by default, here at the band's corners.
    figure.add_trace(go.Scatter(x=x, y=y, mode="lines", fill="toself", fillcolor=_rgba(color, 0.15),
                                line=dict(width=0), hoverinfo="skip", showlegend=False, name=f"{label} interval"))


def segments(model: ModelSection) -> go.Figure | None:
    frame = model.segments
    if frame.empty:
        return None
    frame = frame.assign(label=frame["segment"] + "=" + frame["segment_value"].astype(str))
    figure = _figure(f"{model.metric} per segment on the {model.window_days}-day window, with 95% intervals",
                     height=max(320, 22 * frame["label"].nunique() + 120), xaxis_title=model.metric)
    for i, (version, rows) in enumerate(frame.groupby("model_version", sort=True)):
        color = "#333333" if version == "__all__" else COLORS[i % len(COLORS)]
        figure.add_trace(go.Scatter(
            x=rows["value"], y=rows["label"], mode="markers", name="all versions" if version == "__all__" else version,
            marker=dict(color=color, size=8),
            error_x=dict(type="data", symmetric=False, array=rows["ci_high"] - rows["value"],
                         arrayminus=rows["value"] - rows["ci_low"], color=color),
            customdata=rows[["n_labeled"]], hovertemplate="%{y}: %{x:.4f} (n labeled %{customdata[0]})"))
    references = frame.dropna(subset=["reference_value"]).drop_duplicates("label")
    if len(references):
        figure.add_trace(go.Scatter(x=references["reference_value"], y=references["label"], mode="markers",
                                    name="reference", marker=dict(symbol="line-ns-open", size=14, color="#555555")))
    figure.update_yaxes(autorange="reversed")
    return figure


def drift_heatmap(model: ModelSection) -> go.Figure | None:
    frame = model.drift
    if frame.empty:
        return None
    strength = frame.pivot(index="feature", columns="window_end", values="strength").sort_index()
    drifted = frame.pivot(index="feature", columns="window_end", values="drifted").reindex_like(strength)
    impact = frame.pivot(index="feature", columns="window_end", values="with_impact").reindex_like(strength)
    marks = [["●" if i is True else ("○" if d is True else "") for d, i in zip(drow, irow)]
             for drow, irow in zip(drifted.values.tolist(), impact.values.tolist())]
    figure = _figure(f"Drift: strongest effect size / threshold, {model.window_days}-day windows "
                     "(○ drifted, ● drifted with impact)", height=max(300, 28 * len(strength) + 140))
    figure.add_trace(go.Heatmap(
        z=strength.clip(upper=3).values, x=[str(c) for c in strength.columns], y=list(strength.index),
        text=marks, texttemplate="%{text}", colorscale=[[0, "#f7fbff"], [0.33, "#fdd49e"], [1, "#b30000"]],
        zmin=0, zmax=3, colorbar=dict(title="x threshold"),
        hovertemplate="%{y} on %{x}: %{z:.2f} x threshold<extra></extra>"))
    return figure


def coverage(model: ModelSection) -> go.Figure | None:
    frame = model.coverage
    if frame.empty:
        return None
    figure = _figure("Feature coverage (present, non-default, within contract)",
                     yaxis=_share_axis("coverage", frame["coverage"]))
    for i, (feature, rows) in enumerate(frame.groupby("feature", sort=True)):
        critical = bool(rows["is_critical"].iloc[0])
        figure.add_trace(go.Scatter(x=rows["day"], y=rows["coverage"], mode="lines",
                                    name=f"{feature}{' (critical)' if critical else ''}",
                                    line=dict(color=COLORS[i % len(COLORS)], width=3 if critical else 1.5)))
    return figure


def cost(model: ModelSection) -> go.Figure | None:
    frame = model.cost
    if frame.empty:
        return None
    figure = _figure("Cost per prediction (USD)", yaxis_title="USD per prediction")
    figure.add_trace(go.Scatter(x=frame["day"], y=frame["cost_per_prediction_usd"], mode="lines+markers",
                                name="cost per prediction", line=dict(color=COLORS[0])))
    if model.budget_usd is not None:
        figure.add_hline(y=model.budget_usd, line_dash="dash", line_color=CONSTRAINT,
                         annotation_text="budget", annotation_position="top left")
    return figure


def time_to_decision(model: ModelSection) -> go.Figure | None:
    frame = model.time_to_decision
    if frame.empty:
        return None
    figure = _figure("Time to decision (seconds)", yaxis_title="seconds")
    for i, column in enumerate(("p50_s", "p95_s", "p99_s")):
        figure.add_trace(go.Scatter(x=frame["day"], y=frame[column], mode="lines", name=column[:-2],
                                    line=dict(color=COLORS[i])))
    if model.ttd_slo_s is not None:
        figure.add_hline(y=model.ttd_slo_s, line_dash="dash", line_color=CONSTRAINT,
                         annotation_text="p95 SLO", annotation_position="top left")
    return figure


def ledger_utilization(data: ReportData) -> go.Figure | None:
    frame = data.ledger
    if frame.empty:
        return None
    colors = [CONSTRAINT if c else "#9ecae1" for c in frame["is_constraint"]]
    figure = _figure("Pipeline stages on the day: utilization (bars) and busiest hour (diamonds)",
                     yaxis=_share_axis("utilization", frame["utilization"], frame["peak_utilization"]))
    figure.add_trace(go.Bar(x=frame["stage"], y=frame["utilization"], marker_color=colors, name="utilization (day)"))
    figure.add_trace(go.Scatter(x=frame["stage"], y=frame["peak_utilization"], mode="markers",
                                marker=dict(symbol="diamond", size=11, color="#08306b"), name="busiest hour"))
    return figure


def ledger_history(data: ReportData) -> go.Figure | None:
    frame = data.ledger_history
    if frame.empty:
        return None
    figure = _figure("Busiest-hour utilization per stage (× = the day's constraint)",
                     yaxis=_share_axis("utilization", frame["peak_utilization"]))
    for i, (stage, rows) in enumerate(frame.groupby("stage", sort=False)):
        color = COLORS[i % len(COLORS)]
        figure.add_trace(go.Scatter(x=rows["day"], y=rows["peak_utilization"], mode="lines", name=stage,
                                    line=dict(color=color)))
        marked = rows[rows["is_constraint"] == True]  # noqa: E712
        figure.add_trace(go.Scatter(x=marked["day"], y=marked["peak_utilization"], mode="markers",
                                    marker=dict(symbol="x", size=9, color=color), showlegend=False,
                                    hovertemplate=f"{stage} is the constraint<extra></extra>"))
    return figure


def self_ledger(data: ReportData) -> go.Figure | None:
    frame = data.self_ledger
    if frame.empty:
        return None
    colors = [CONSTRAINT if c else "#bdbdbd" for c in frame["is_constraint"]]
    figure = _figure("mlwatch's own night: seconds per step", yaxis_title="seconds")
    figure.add_trace(go.Bar(x=frame["stage"], y=frame["seconds"], marker_color=colors, name="seconds",
                            customdata=frame[["records_in"]],
                            hovertemplate="%{x}: %{y:.1f} s, %{customdata[0]:,} rows<extra></extra>"))
    return figure


def model_charts(model: ModelSection) -> list[tuple[str, go.Figure]]:
    drawn = [("performance", performance_over_time(model)), ("segments", segments(model)),
             ("drift", drift_heatmap(model)), ("coverage", coverage(model)), ("cost", cost(model)),
             ("time_to_decision", time_to_decision(model))]
    return [(key, figure) for key, figure in drawn if figure is not None]


def pipeline_charts(data: ReportData) -> list[tuple[str, go.Figure]]:
    drawn = [("ledger", ledger_utilization(data)), ("ledger_history", ledger_history(data)),
             ("self_ledger", self_ledger(data))]
    return [(key, figure) for key, figure in drawn if figure is not None]

