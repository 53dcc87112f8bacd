# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript in a build stage, ship only dist/ and
# production dependencies, run as a non-root user. Node 22 is a maintained
# LTS line (Node 20 reached its end of life in April 2026); the code also runs
# on Node 20, which CI still uses.

FROM node:22-bookworm-slim AS build
WORKDIR /src
# Dependencies first: this layer is reused until package-lock.json changes.
# --ignore-scripts skips this package's own `prepare` (the sources are not
# here yet); better-sqlite3's native build then runs on its own.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY config ./config
COPY rules ./rules
RUN useradd --system --uid 10001 --home /app xmpp-guard && mkdir -p /app/data && chown xmpp-guard /app/data
USER xmpp-guard
# 9470 (admin) answers from outside the container only with admin.listen
# "0.0.0.0:9470", which the config refuses without admin.token.
EXPOSE 5222 5223 5269 9470
VOLUME ["/app/config", "/app/rules", "/app/data"]
STOPSIGNAL SIGTERM
# Ready: listeners bound and the XMPP server behind reachable (503 otherwise).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD node -e "require('http').get('http://127.0.0.1:9470/readyz', r => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["run", "-c", "config/xmpp-guard.yaml"]
