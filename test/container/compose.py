#!/usr/bin/env python3
"""What a compose file asks for, as lines test/container/hub.sh turns into buildah and podman
commands, so that the test runs hub/compose.yaml itself rather than a copy of it.

    compose.py FILE builds     one line per image to build: IMAGE<TAB>CONTAINERFILE<TAB>TARGET
                               (TARGET "-" for the last stage); paths from the repository root
    compose.py FILE services   one line per service, dependencies first:
                               SERVICE<TAB>IMAGE<TAB>VAR=value<TAB>...

Variables are substituted from the environment as compose does (${VAR}, ${VAR:-default},
${VAR:?message}, $$). Only the keys below are understood; any other key is an error, so that
the file cannot ask for something the test would silently leave out. Every service must use
network_mode: host (the tests use loopback only: no bridge, no published port). `restart` is
read and not applied: a test wants to see a failure, not a restart.
"""
import os
import re
import sys

import yaml

SERVICE_KEYS = {"build", "image", "network_mode", "environment", "depends_on", "restart"}
BUILD_KEYS = {"context", "dockerfile", "target"}
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def fail(message):
    sys.exit(f"compose.py: {message}")


def interpolate(value):
    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = os.environ.get(name, "")
        if op == ":-":
            return value or arg
        if not value and op == ":?":
            fail(f"{name}: {arg}")
        return value

    return VARIABLE.sub(substitute, str(value))


def load(path):
    with open(path, encoding="utf-8") as file:
        document = yaml.safe_load(file)
    services = document.get("services") or fail(f"{path}: no services")
    for name, service in services.items():
        unknown = set(service) - SERVICE_KEYS
        if unknown:
            fail(f"{path}: service {name}: keys this test does not run: {sorted(unknown)}")
        if service.get("network_mode") != "host":
            fail(f"{path}: service {name}: network_mode must be host (loopback only)")
        if "image" not in service:
            fail(f"{path}: service {name}: no image")
        if isinstance(service.get("environment"), list):
            fail(f"{path}: service {name}: environment as a list; write it as a mapping")
    return services


def ordered(services):
    """Service names, each after the services it depends on."""
    done, order = set(), []

    def visit(name, path):
        if name in done:
            return
        if name in path:
            fail(f"depends_on cycle through {name}")
        if name not in services:
            fail(f"depends_on names an unknown service {name}")
        for dependency in services[name].get("depends_on") or []:
            visit(dependency, path | {name})
        done.add(name)
        order.append(name)

    for name in services:
        visit(name, set())
    return order


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("builds", "services"):
        sys.exit(__doc__)
    path = sys.argv[1]
    repository = os.getcwd()
    services = load(path)
    if sys.argv[2] == "builds":
        for service in services.values():
            build = service.get("build")
            if build is None:
                continue
            unknown = set(build) - BUILD_KEYS
            if unknown:
                fail(f"{path}: build keys this test does not run: {sorted(unknown)}")
            context = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), build.get("context", ".")))
            if context != repository:
                fail(f"{path}: build context {context} is not the repository root {repository}")
            print("\t".join([interpolate(service["image"]), build.get("dockerfile", "Dockerfile"), build.get("target", "-")]))
    else:
        for name in ordered(services):
            service = services[name]
            environment = [f"{key}={interpolate(value)}" for key, value in (service.get("environment") or {}).items()]
            fields = [name, interpolate(service["image"])] + environment
            if any("\t" in field or "\n" in field for field in fields):
                fail(f"{path}: service {name}: a tab or newline in a value")
            print("\t".join(fields))


main()
