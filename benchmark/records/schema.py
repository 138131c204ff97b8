"""The result files' schema version: below both the writer (``results``) and the rows that judge a result current."""

SCHEMA_VERSION = 2  # 2: per-query files, nDCG@10 and MAP, row names, CPU and kernels recorded
