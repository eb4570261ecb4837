# The chat room's container image (examples/chat/Dockerfile), built with buildah and run
# with podman on the host network; the browser test runs against it and a `ws` client checks
# that `podman stop` closes the room gracefully. See test/container/run.sh.
#
#   make test-container          needs root, buildah, podman, debootstrap, runc (make deps)
#
# The first run makes the debian:bookworm-slim base image with debootstrap and builds the
# image (about 5 minutes); later runs reuse both (about 30 seconds). Set
# WEBSOCK_SKIP_CONTAINER=1 to skip it. Release build only, like test-e2e: the sanitizer
# builds re-run test-quick. The image builds its own binary from the sources; it does not
# use build/.

ifeq ($(BUILD),release)
.PHONY: test-container
test-container:
	test/container/run.sh

test-quick: test-container
endif
