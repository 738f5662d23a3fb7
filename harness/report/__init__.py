"""From records to people: the metric registry, comparison tables, plots, compare, trend."""
