#!/usr/bin/env bash
# Installs or builds every server and tool that kvop's tests and demo need, each into
# $KVOP_TOOLS/<name>-<version>/ (default ~/.cache/kvop/tools), skipping what is already there.
# Usage: hack/tools.sh [tool...]   (default: all; names: etcd etcd-v2 zookeeper kube-apiserver
#        kubectl envtest consul coredns controller-gen kustomize helm staticcheck)
# Nothing here downloads anything but Debian packages and Go modules.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools.env
source "$root/hack/tools.env"
TOOLS=${KVOP_TOOLS:-$HOME/.cache/kvop/tools}
mkdir -p "$TOOLS"
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

say() { printf '==> %s\n' "$*"; }
die() { printf 'tools: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

# have DIR FILE: true when DIR/FILE was installed completely (directories are renamed into place).
have() { [ -e "$TOOLS/$1/$2" ]; }

# publish NAME-VERSION TMPDIR: atomically moves a finished install into place.
publish() { chmod 755 "$2"; rm -rf "${TOOLS:?}/$1"; mv "$2" "$TOOLS/$1"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "Debian packages ${missing[*]} are missing and installing them needs root: run 'sudo make tools' or 'sudo apt-get install -y --no-install-recommends ${missing[*]}'"
    SUDO=sudo
  fi
  command -v apt-get >/dev/null || die "Debian packages ${missing[*]} are needed but apt-get is missing: kvop's test servers need Debian or Ubuntu"
  say "apt-get install ${missing[*]} (about 30 s)"
  ${SUDO:-} apt-get update -qq
  DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

tool_etcd() { # a current etcd for the v3 backend and envtest (Kubernetes 1.37 ships etcd 3.7)
  local dir=etcd-$ETCD_VERSION
  have "$dir" etcd && return 0
  say "building etcd $ETCD_VERSION from the Go module proxy (about 2 min)"
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  (cd "$root/hack/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .)
  publish "$dir" "$tmp"
  say "etcd $ETCD_VERSION built in $(elapsed "$start")"
}

tool_etcd-v2() { # Debian's etcd 3.4 still serves the legacy v2 API (with --enable-v2); 3.6 removed it.
  local dir=etcd-$ETCD_DEB_VERSION
  have "$dir" etcd && return 0
  apt_install etcd-server
  local got; got=$(/usr/bin/etcd --version | sed -n 's/^etcd Version: //p')
  [ "$got" = "$ETCD_DEB_VERSION" ] || die "Debian's etcd-server is $got, kvop pins $ETCD_DEB_VERSION (update hack/tools.env)"
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  ln -s /usr/bin/etcd "$tmp/etcd"
  publish "$dir" "$tmp"
  say "etcd $ETCD_DEB_VERSION ready"
}

tool_zookeeper() {
  local dir=zookeeper-$ZOOKEEPER_DEB_VERSION
  have "$dir" netty-codec.jar && return 0
  apt_install zookeeper
  [ -e "/usr/share/java/zookeeper-$ZOOKEEPER_DEB_VERSION.jar" ] || die "Debian's zookeeper is not $ZOOKEEPER_DEB_VERSION (update hack/tools.env)"
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  ln -s "/usr/share/java/zookeeper-$ZOOKEEPER_DEB_VERSION.jar" "$tmp/zookeeper.jar"
  # The jar's manifest class path lacks netty-codec (needed by the Netty transport that TLS
  # uses) and any SLF4J binding (without one the server logs nothing).
  for jar in netty-codec slf4j-simple; do
    [ -e "/usr/share/java/$jar.jar" ] || die "/usr/share/java/$jar.jar is missing (Debian package libnetty-java / libslf4j-java)"
    ln -s "/usr/share/java/$jar.jar" "$tmp/$jar.jar"
  done
  ln -s "$(readlink -f "$(command -v java)")" "$tmp/java"
  publish "$dir" "$tmp"
  say "zookeeper $ZOOKEEPER_DEB_VERSION ready"
}

# k8s_ldflags: stamps the version so the binaries do not report a placeholder.
k8s_ldflags() {
  local v=${KUBERNETES_VERSION#v} flags="-s -w"
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$flags"
}

build_k8s() { # build_k8s NAME: builds hack/tools/kube-apiserver/cmd/NAME
  local name=$1 dir=$1-$KUBERNETES_VERSION
  have "$dir" "$name" && return 0
  say "building $name $KUBERNETES_VERSION from the Go module proxy (10-20 min cold on 2 cores for kube-apiserver, ~1 min for kubectl)"
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  (cd "$root/hack/tools/kube-apiserver" && go build -trimpath -ldflags "$(k8s_ldflags)" -o "$tmp/$name" "./cmd/$name")
  publish "$dir" "$tmp"
  say "$name $KUBERNETES_VERSION built in $(elapsed "$start")"
}

tool_kube-apiserver() { build_k8s kube-apiserver; }
tool_kubectl() { build_k8s kubectl; }

tool_envtest() { # KUBEBUILDER_ASSETS: the API server and the etcd it stores into.
  local dir=envtest-$KUBERNETES_VERSION
  have "$dir" etcd && have "$dir" kube-apiserver && return 0
  tool_kube-apiserver
  tool_etcd
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  ln -s "$TOOLS/kube-apiserver-$KUBERNETES_VERSION/kube-apiserver" "$tmp/kube-apiserver"
  ln -s "$TOOLS/etcd-$ETCD_VERSION/etcd" "$tmp/etcd"
  publish "$dir" "$tmp"
  say "envtest assets ready in $TOOLS/$dir"
}

tool_consul() {
  local dir=consul-$CONSUL_VERSION
  have "$dir" consul && return 0
  say "building consul $CONSUL_VERSION from the Go module proxy (about 8 min on 2 cores)"
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  (cd "$root/hack/tools/consul" &&
    GONOSUMDB=github.com/hashicorp/consul/envoyextensions,github.com/hashicorp/hcp-sdk-go \
      go build -trimpath -ldflags "-s -w" -o "$tmp/consul" .)
  publish "$dir" "$tmp"
  say "consul $CONSUL_VERSION built in $(elapsed "$start")"
}

tool_coredns() { # CoreDNS with its etcd plugin, for the skydns Registration format's tests
  local dir=coredns-$COREDNS_VERSION
  have "$dir" coredns && return 0
  say "building coredns $COREDNS_VERSION from the Go module proxy (about 1 min on 2 cores)"
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  (cd "$root/hack/tools/coredns" && go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" .)
  publish "$dir" "$tmp"
  say "coredns $COREDNS_VERSION built in $(elapsed "$start")"
}

go_install() { # go_install NAME VERSION PACKAGE
  local name=$1 version=$2 pkg=$3 dir=$1-$2
  have "$dir" "$name" && return 0
  say "go install $pkg@$version"
  local start; start=$(date +%s)
  local tmp; tmp=$(mktemp -d "$TOOLS/.tmp.XXXX")
  GOBIN=$tmp go install "$pkg@$version"
  publish "$dir" "$tmp"
  say "$name $version installed in $(elapsed "$start")"
}

tool_controller-gen() { go_install controller-gen "$CONTROLLER_GEN_VERSION" sigs.k8s.io/controller-tools/cmd/controller-gen; }
tool_kustomize() { go_install kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5; }
tool_helm() { go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm; }
# staticcheck is installed on demand by `make lint`, not with every other tool (`make tools`).
tool_staticcheck() { go_install staticcheck "$STATICCHECK_VERSION" honnef.co/go/tools/cmd/staticcheck; }

all=(etcd etcd-v2 zookeeper kube-apiserver envtest kubectl consul coredns controller-gen kustomize helm)
[ $# -eq 0 ] && set -- "${all[@]}"
rm -rf "$TOOLS"/.tmp.* 2>/dev/null || true
for tool in "$@"; do
  declare -F "tool_$tool" >/dev/null || die "unknown tool '$tool' (known: ${all[*]} staticcheck)"
  "tool_$tool"
done
say "tools ready in $TOOLS"
