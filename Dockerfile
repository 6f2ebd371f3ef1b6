# blurtrack streaming service: MindSpore Lite runtime (ctypes shim) + ONNX Runtime + shipped bundles.
#
#   docker build -t blurtrack .
#   docker run --rm -p 8000:8000 -e BLURTRACK_API_KEY=change-me blurtrack
#
# Stage 1 installs the package, fetches MindSpore Lite and compiles its shim (needs g++), and
# converts the shipped ONNX bundles to .ms with that same runtime. Stage 2 carries only the
# results: no compiler, no build caches.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BLURTRACK_MSLITE_HOME=/opt/mslite \
    BLURTRACK_MODELS_DIR=/app/models/weights

RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ libgomp1 \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
# The package (the runtime path needs no torch: the [train] extra is not installed).
COPY pyproject.toml setup.py README.md ./
COPY blurtrack ./blurtrack
COPY engine ./engine
COPY service ./service
COPY clients ./clients
COPY models ./models
RUN pip install .

# MindSpore Lite: download the wheel's native libraries into /opt/mslite and build the shim there.
# Its rpath points at /opt/mslite/mindspore_lite/lib, so stage 2 keeps the same path.
RUN blurtrack setup mslite
# .ms files made by the runtime that will load them (a no-op for bundles already converted).
RUN blurtrack models convert --all && blurtrack models list


FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 libstdc++6 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app blurtrack

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BLURTRACK_MSLITE_HOME=/opt/mslite \
    BLURTRACK_MODELS_DIR=/app/models/weights \
    BLURTRACK_BACKEND=auto \
    BLURTRACK_THREADS=1

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/mslite /opt/mslite
COPY --from=build /app/models/weights /app/models/weights

WORKDIR /app
USER blurtrack
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1

# BLURTRACK_BUNDLE picks the bundle; BLURTRACK_API_KEY turns authentication on.
CMD ["blurtrack", "serve", "--host", "0.0.0.0", "--port", "8000"]
