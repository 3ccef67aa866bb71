#!/usr/bin/env bash
# generate.sh regenerates the Go code of every .proto file under proto/, beside its source
# (paths=source_relative). The generated code is committed; `make proto` runs this script.
#
# The plugin versions are pinned so that two runs, on any machine, write identical files;
# a missing or different plugin is installed into $(go env GOPATH)/bin first. protoc itself
# comes from the system (Debian protobuf-compiler); its version is written into the headers
# of the generated files, so another version is reported (the output then differs only there).
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_VERSION=3.21.12

cd "$(dirname "${BASH_SOURCE[0]}")"

gobin="$(go env GOPATH)/bin"
export PATH="${gobin}:${PATH}"

# install_plugin installs module@version into gobin unless `binary --version` already
# reports that version.
install_plugin() {
	local binary=$1 module=$2 version=$3 have=""
	if command -v "${binary}" >/dev/null 2>&1; then
		have=$("${binary}" --version 2>/dev/null || true)
		have=${have##* } # "protoc-gen-go v1.36.12", "protoc-gen-go-grpc 1.6.2"
		if [[ "${have#v}" == "${version#v}" ]]; then
			return
		fi
	fi
	echo "installing ${module}@${version} into ${gobin}" >&2
	GOBIN="${gobin}" go install "${module}@${version}"
}

install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "${PROTOC_GEN_GO_VERSION}"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "${PROTOC_GEN_GO_GRPC_VERSION}"

protoc=${PROTOC:-protoc}
if ! command -v "${protoc}" >/dev/null 2>&1; then
	echo "protoc not found: install protobuf-compiler (apt-get install protobuf-compiler)" >&2
	exit 1
fi
if [[ "$("${protoc}" --version)" != "libprotoc ${PROTOC_VERSION}" ]]; then
	echo "warning: $("${protoc}" --version) is not libprotoc ${PROTOC_VERSION}; generated headers will differ" >&2
fi

# Every .proto file, in a stable order, compiled in one run so imports between them resolve.
mapfile -t files < <(find . -name '*.proto' -not -path './google/*' | sed 's|^\./||' | LC_ALL=C sort)
if [[ ${#files[@]} -eq 0 ]]; then
	echo "no .proto files under $(pwd)" >&2
	exit 1
fi

"${protoc}" -I . \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	"${files[@]}"

echo "generated ${#files[@]} proto file(s)" >&2
