# The speech-recognition service for GPU hosts (CPU works too): docker build -t asr .
# Needs the NVIDIA Container Toolkit and a driver for CUDA 13 (>= 580) to use the GPU. See docs/deployment.md.

# BASE: deploy/test-image.sh builds on a stand-in bootstrapped from Debian's packages where no registry is reachable.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, at the locked versions, so a code change does not reinstall torch and CUDA.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > runtime.txt \
    && pip install --no-cache-dir -c requirements.lock -r runtime.txt
# The core, the service and the asr client, with the bundled model and LM as package data; never the training code.
COPY README.md ./
COPY asr asr
COPY service service
COPY client client
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import asr.checkpoint as c, asr.language_model as lm; assert c.DEFAULT_CHECKPOINT.is_file() and lm.LanguageModel.load(lm.DEFAULT_LM).arpa.is_file()"

# Training, for torchrun on GPU nodes (deploy/kubernetes/training-job.yaml): docker build --target train -t asr-train .
FROM ${BASE} AS train
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /src
COPY --from=build /src ./
COPY training training
RUN pip install --no-cache-dir -c requirements.lock ".[train]" \
    && groupadd --system --gid 10001 asr && useradd --system --uid 10001 --gid asr --create-home asr
USER 10001:10001
WORKDIR /home/asr
CMD ["python", "-m", "training", "--help"]

# The service: the default target, so it comes last.
FROM ${BASE}
RUN groupadd --system --gid 10001 asr && useradd --system --uid 10001 --gid asr --create-home asr
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ASR_HOST=0.0.0.0 \
    ASR_PORT=8000
# Numeric, so Kubernetes can check runAsNonRoot.
USER 10001:10001
WORKDIR /home/asr
EXPOSE 8000
# Liveness only: /ready is for load balancers, and a model still loading is not a sick container.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "service.probe", "/health"]
# Exec form: the server is PID 1 and gets SIGTERM itself, drains, and exits 0 (allow ASR_DRAIN_SECONDS + 10 s).
ENTRYPOINT ["python", "-m", "service"]
