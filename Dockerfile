# Keyvault's image: the wheel installed into a virtualenv, run as an unprivileged user, static
# files collected at build, gunicorn with the settings shipped in the package. Every step runs
# deploy/entrypoint.sh, which CI runs outside a container (.ci/deploy-check).
#
#   docker build -t keyvault .
#   docker compose up        (compose.yaml: the app, PostgreSQL and Redis)

# --- Build the wheel from the source tree -----------------------------------------------------
FROM python:3.12-slim-bookworm AS wheel
WORKDIR /src
RUN pip install --no-cache-dir "build==1.2.2.post1"
COPY pyproject.toml README.md ./
COPY accounts ./accounts
COPY audit ./audit
COPY config ./config
COPY core ./core
COPY keyvault ./keyvault
COPY organizations ./organizations
COPY static ./static
COPY templates ./templates
RUN python -m build --wheel --outdir /dist .

# --- The runtime image --------------------------------------------------------------------------
FROM python:3.12-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/keyvault/bin:$PATH \
    KEYVAULT_VAR_DIR=/var/lib/keyvault \
    GUNICORN_BIND=0.0.0.0:8000 \
    DEBUG=false

# A system user (fixed ids, so volumes and host files can be granted to it) without a shell or
# a writable home outside its state folder.
RUN groupadd --system --gid 10001 keyvault \
    && useradd --system --uid 10001 --gid keyvault --home-dir /var/lib/keyvault --no-create-home \
       --shell /usr/sbin/nologin keyvault \
    && install -d -o keyvault -g keyvault -m 0700 /var/lib/keyvault

COPY --from=wheel /dist/ /tmp/dist/
# The wheel with its dependencies (the `kms` extra adds boto3 for AWS KMS keyrings).
ARG KEYVAULT_EXTRAS=""
RUN python -m venv /opt/keyvault \
    && wheel=$(ls /tmp/dist/keyvault-*.whl) \
    && /opt/keyvault/bin/pip install --no-cache-dir "${wheel}${KEYVAULT_EXTRAS:+[$KEYVAULT_EXTRAS]}" \
    && rm -rf /tmp/dist
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/keyvault-entrypoint

USER 10001:10001
WORKDIR /var/lib/keyvault
# Static files at build: the hashed names whitenoise serves are part of the image.
RUN keyvault-entrypoint collectstatic

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["keyvault-entrypoint", "healthcheck"]
ENTRYPOINT ["keyvault-entrypoint"]
CMD ["start"]
