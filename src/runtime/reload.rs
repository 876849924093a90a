//! Watching the pipeline files and SIGHUP: new configurations for the running pipeline.
