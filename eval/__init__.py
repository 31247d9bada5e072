"""Everything that measures: data preparation, scoring, the metric, config and results."""
