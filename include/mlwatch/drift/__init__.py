"""Drift of features and scores, computed from histograms built in DuckDB.

  reference.py  the reference period summarized once per model: bin edges and categories
  daily.py      one histogram per model, day and feature, from one scan of the day
  methods.py    the statistical tests, on histograms (scipy where a test is needed)
  compute.py    trailing windows as sums of days, multiple-testing control, the table
"""
