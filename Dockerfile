# syntax=docker/dockerfile:1
# The kubestorage image: the CLI (`kubestorage store|directory|gateway|...`) as entrypoint,
# run as the unprivileged `node` user. Build:  docker build -t kubestorage:dev .
# The TypeScript sources run through tsx's loader, as with `npx kubestorage`: there is no
# compile step, only dependencies to install (zstd-napi builds its native addon here).

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: production dependencies, native addons compiled -------------------------------
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# --- runtime: node and the app, no compiler, no npm cache ---------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the runtime user: the code cannot be changed in place
# even where the root filesystem is not mounted read-only.
COPY --from=build /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
# What `kubestorage` imports (test/k8s-manifests.test.ts checks the list against the imports
# of cli/main.ts); tests are left out by .dockerignore.
COPY bin ./bin
COPY cache ./cache
COPY cli ./cli
COPY common ./common
COPY compose ./compose
COPY data-path ./data-path
COPY directory ./directory
COPY gateway ./gateway
COPY store-node ./store-node
COPY bench ./bench
RUN ln -s /app/bin/kubestorage.js /usr/local/bin/kubestorage \
 && mkdir -p /data \
 && chown node:node /data
# uid/gid 1000, which the Kubernetes manifests name in runAsUser and fsGroup. Writable at
# run time: /data (the volumes, the Raft log) and the temp dir, where tsx caches compiled
# sources (an emptyDir at /tmp in Kubernetes, under a read-only root filesystem).
USER node
VOLUME ["/data"]
# directory, store, S3
EXPOSE 7001 8080 9000
ENTRYPOINT ["kubestorage"]
CMD ["--help"]
