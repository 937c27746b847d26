"""What runs the pipeline on AWS: the templates beside this file, the container's checks
and the worker's start-up (`deployments.aws.worker`)."""
