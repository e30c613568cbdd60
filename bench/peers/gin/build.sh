#!/bin/sh
# Builds the Gin peer offline from Debian's Go packages (GOPATH mode, no module download):
#   apt-get install -y golang-go golang-github-gin-gonic-gin-dev golang-github-golang-jwt-jwt-dev \
#     golang-github-lib-pq-dev golang-github-gomodule-redigo-dev
set -eu
cd "$(dirname "$0")"
mkdir -p bin
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="${GOCACHE:-/tmp/gin-peer-gocache}" \
  go build -trimpath -o bin/gin-peer main.go
