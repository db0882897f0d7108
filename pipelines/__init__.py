"""Spark jobs: each runs by `spark-submit pipelines/<job>.py --lake ... --ds ...` and by the CLI."""
