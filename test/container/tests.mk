# The container images, built with buildah and run with podman on the host network:
#  - test-container-chat (run.sh): the chat room's image (examples/chat/Dockerfile); the
#    browser test runs against it and a `ws` client checks that `podman stop` closes the
#    room gracefully;
#  - test-container-hub (hub.sh): websock-hub's image (hub/Containerfile) with Redis and two
#    nodes, as hub/compose.yaml runs them: a publish to node A reaches node B's subscriber.
#
#   make test-container          both; needs root, buildah, podman, debootstrap, runc (make deps)
#
# The first run makes the debian:bookworm-slim base image with debootstrap (about 3 minutes)
# and builds the images (2 to 7 minutes each on 2 shared cores; the hub image reuses the chat
# image's first layer); later runs reuse the base image and the cached layers (seconds,
# until websock/ or hub/ change). Set
# WEBSOCK_SKIP_CONTAINER=1 to skip them. Release build only, like test-e2e: the sanitizer
# builds re-run test-quick. The images build their own binaries from the sources; they do
# not use build/.
#
# The Debian packages (test-deb, deb.sh): `make deb` (debian/deb.mk), then the three packages
# installed with apt-get into a fresh Debian 12 root (the base image above, exported; with
# WEBSOCK_SKIP_CONTAINER=1 a debootstrapped directory), a program built there against them,
# websock-hub run from them (two nodes through Redis), then purged. Needs root. make deb
# builds from scratch every time (3 to 6 minutes on 2 shared cores, 2.5 minutes of CPU); the
# test itself takes under a minute.
#
#   test/container/fresh-root.sh     (by hand, not in make test) the README's two commands
#                                    in a fresh debootstrapped Debian 12 root

ifeq ($(BUILD),release)
.PHONY: test-container test-container-chat test-container-hub test-deb
test-container-chat:
	test/container/run.sh
test-container-hub:
	test/container/hub.sh
test-container: test-container-chat test-container-hub

# DEB_DIR: debian/deb.mk (where make deb puts the packages).
test-deb: deb
	test/container/deb.sh $(DEB_DIR)

test-quick: test-container test-deb
endif
