# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript in a build stage, ship only dist/ and
# production dependencies, run as a non-root user.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY config ./config
COPY rules ./rules
RUN useradd --system --uid 10001 --home /app xmpp-guard && mkdir -p /app/data && chown xmpp-guard /app/data
USER xmpp-guard
EXPOSE 5222 5223 5269 9470
VOLUME ["/app/config", "/app/rules", "/app/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD node -e "require('http').get('http://127.0.0.1:9470/healthz', r => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["run", "-c", "config/xmpp-guard.yaml"]
