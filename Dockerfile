# syntax=docker/dockerfile:1
# The perishable broker (with its console) as a container: `docker build -t perishable .`
# Stage 1 builds the workspace and deploys the broker with its production dependencies only.
FROM node:20-bookworm-slim AS build
# Node 20's corepack carries signing keys older than current pnpm releases.
ENV COREPACK_INTEGRITY_KEYS=0 CI=true
WORKDIR /src
COPY . .
RUN corepack pnpm install --frozen-lockfile \
 && corepack pnpm build \
 && corepack pnpm --filter @perishable/broker deploy --legacy --prod /out

# Stage 2: the built broker and console, its runtime dependencies, no sources, no build tools.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /out /app
# The config is mounted here (a ConfigMap, a Compose volume); keys come from the environment.
VOLUME ["/etc/perishable"]
USER node
EXPOSE 8420
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8420/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/bin.js"]
CMD ["start", "--config", "/etc/perishable/config/perishable.yaml"]
