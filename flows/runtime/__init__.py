"""What flows need to run: the stage log and summary, fan-out on a task runner, pipelines by name, reaching Prefect, the local server."""
