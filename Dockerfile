# callback-relay: build with the dev dependencies, run with the production ones only.
#
#   docker build -t callback-relay .
#   docker run -p 8080:8080 -e DATABASE_URL=postgres://… -e PUBLIC_BASE_URL=https://relay.example.com callback-relay
#
# Pin NODE_IMAGE to a digest (node:20-bookworm-slim@sha256:…) for reproducible builds.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
# The build also copies the /docs page's script into dist/ (its package is a dev dependency).
RUN npm run build && rm -f dist/.tsbuildinfo

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Migrations are read at start-up from ../../drizzle relative to dist/db.
COPY drizzle ./drizzle
# The image's own files stay root-owned and read-only to the service; only /data (PGlite, when no
# DATABASE_URL is set) is writable.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# Liveness only: /readyz would mark the container unhealthy during a database outage, and restarting
# the relay does not bring the database back.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`, { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# main.ts drains on SIGTERM (15 s at most); give `docker stop -t` at least that.
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
