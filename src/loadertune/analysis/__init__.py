"""Analysis: pure functions of records (verdict, explanation, advice, timeline) and the result
document assembled from a record and its analysis."""
