#!/usr/bin/env bash
# Idempotent machine setup for latentwire on Debian 12 (bookworm), run as root by `npm start` / `npm test`.
# Installs what a fresh machine lacks: nats-server, redis-server, chromium (the web page tests drive it
# headless), and Mesa's Vulkan drivers (lavapipe) from bookworm-backports, because Dawn refuses bookworm's
# own Mesa 22.3. Set LATENTWIRE_SKIP_SETUP=1 to skip.
set -euo pipefail
[[ "${LATENTWIRE_SKIP_SETUP:-}" == "1" ]] && exit 0

log() { echo "setup: $*" >&2; }

need_pkgs=()
command -v nats-server >/dev/null 2>&1 || need_pkgs+=(nats-server)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)

mesa_ok() {
  # Dawn needs Mesa >= 23 (lavapipe with shaderUniform*ArrayDynamicIndexing)
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [[ -n "$v" ]] && dpkg --compare-versions "$v" ge 23 && dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'ok installed'
}

if [[ ${#need_pkgs[@]} -eq 0 ]] && mesa_ok; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "missing: ${need_pkgs[*]:-} $(mesa_ok || echo 'mesa-vulkan-drivers>=23 (bookworm-backports)'); run infra/setup.sh as root"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! mesa_ok; then
  # The backports suite is written with the URIs of this machine's own Debian sources (mirror or snapshot),
  # so no host name is hard-coded here.
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uris=$(
      {
        grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -E 's/^\s*URIs:\s*//' | tr ' ' '\n'
        grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -E '\sbookworm(\s|$)' | awk '{for(i=2;i<=NF;i++) if ($i ~ /:\/\//) {print $i; break}}' || true
      } | grep -v -- '-security' | grep -vi 'nodesource\|google' | sort -u | head -n 1 || true
    )
    if [[ -z "$uris" ]]; then
      log "no Debian source found in /etc/apt to derive bookworm-backports from"; exit 1
    fi
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    log "adding bookworm-backports from $uris"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' "$uris" "$keyring" \
      > /etc/apt/sources.list.d/latentwire-backports.sources
  fi
  apt-get update -qq
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  log "installed $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  log "installed ${need_pkgs[*]}"
fi
