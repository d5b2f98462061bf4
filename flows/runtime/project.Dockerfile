# The project image for the Docker work pool. Built offline by flows/runtime/project_image.py
# (`thinkflow sandbox setup-docker --project-image`), whose build context holds: site-packages/
# (the building environment's installed distributions), app/ (this checkout's code) and bin/
# (the prefect and thinkflow launchers). Nothing is downloaded while building.
ARG BASE_IMAGE=thinkflow-base:bookworm
FROM ${BASE_IMAGE}
COPY site-packages /opt/thinkflow/site-packages
COPY bin /usr/local/bin
COPY app /app
ENV PYTHONPATH=/app:/opt/thinkflow/site-packages \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1
WORKDIR /app
