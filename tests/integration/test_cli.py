"""The command lines' contract (SNAPSHOT.md): an unknown flag or a bad value
exits 2 with a one-line reason on stderr; --help lists the flags and exits 0.
Every flag also reads an environment variable, with the same checks."""

import subprocess

import pytest

from conftest import binary, clean_env

# (binary, argv, extra environment, a word the one-line reason must contain)
BAD = [
    ("gantry-proxy", ["--no-such-flag"], {}, "no-such-flag"),
    ("gantry-proxy", ["--http-listen", "nonsense"], {}, "http-listen"),
    ("gantry-proxy", ["--admin-listen", "127.0.0.1:99999"], {}, "admin-listen"),
    ("gantry-proxy", ["--stats-listen", "everywhere"], {}, "stats-listen"),
    ("gantry-proxy", ["--stats-listen", "0.0.0.0:9901", "--admin-listen", "127.0.0.1:9901"], {},
     "different ports"),
    ("gantry-proxy", ["--workers", "many"], {}, "workers"),
    ("gantry-proxy", ["--request-header-timeout", "10 parsecs"], {}, "request-header-timeout"),
    ("gantry-proxy", ["--drain-seconds"], {}, "drain-seconds"),
    ("gantry-proxy", ["--upstream-max-idle-per-endpoint", "0"], {}, "upstream-max-idle-per-endpoint"),
    ("gantry-proxy", ["--http2", "maybe"], {}, "http2"),
    ("gantry-proxy", ["--h2c-listen", "anywhere"], {}, "h2c-listen"),
    ("gantry-proxy", ["--http2", "off", "--h2c-listen", "127.0.0.1:8082"], {}, "--h2c-listen needs --http2=on"),
    ("gantry-proxy", ["--tracing-endpoint", "https://collector:4318"], {}, "tracing-endpoint"),
    ("gantry-proxy", ["--tracing-sampling", "1.5"], {}, "tracing-sampling"),
    ("gantry-proxy", ["--tracing-service-name", ""], {}, "tracing-service-name"),
    ("gantry-proxy", ["stray-argument"], {}, "stray-argument"),
    ("gantry-proxy", [], {"GANTRY_HTTP_LISTEN": "nonsense"}, "GANTRY_HTTP_LISTEN"),
    ("gantry-controller", ["--no-such-flag"], {}, "no-such-flag"),
    ("gantry-controller", ["--health-listen", "nowhere"], {}, "health-listen"),
    ("gantry-controller", ["--admin-listen", "127.0.0.1:-1"], {}, "admin-listen"),
    ("gantry-controller", ["--health-listen", "127.0.0.1:9902", "--admin-listen", "127.0.0.1:9902"],
     {}, "different ports"),
    ("gantry-controller", ["--hostname-ownership", "sometimes"], {}, "hostname-ownership"),
    ("gantry-controller", ["--source", "carrier-pigeon"], {}, "source"),
    ("gantry-controller", ["--proxy-socket"], {}, "proxy-socket"),
    ("gantry-controller", [], {"GANTRY_HEALTH_LISTEN": "nowhere"}, "GANTRY_HEALTH_LISTEN"),
    ("gantry-echo", ["--no-such-flag"], {}, "no-such-flag"),
    ("gantry-echo", ["--listen", "nowhere"], {}, "listen"),
    ("gantry-echo", ["--threads", "0"], {}, "threads"),
]


def run(name, argv, env=None):
    return subprocess.run([binary(name)] + argv, capture_output=True, env=clean_env(env),
                          timeout=10, stdin=subprocess.DEVNULL)


def case_id(case):
    name, argv, env, _ = case
    return f"{name}:{' '.join(argv) or ','.join(env)}"


@pytest.mark.parametrize("name,argv,env,word", BAD, ids=[case_id(b) for b in BAD])
def test_bad_flag_exits_2_with_one_line(name, argv, env, word):
    out = run(name, argv, env)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.decode(errors="replace").splitlines()
    assert len(lines) == 1, lines
    assert word in lines[0], lines
    assert lines[0].startswith(name), lines


# (binary, flags --help must list)
HELP = [
    ("gantry-proxy", ["--http-listen", "--https-listen", "--stats-listen", "--admin-listen",
                      "--control-socket",
                      "--snapshot-file", "--workers", "--drain-seconds", "--debug-headers",
                      "--request-header-timeout", "--trusted-proxies", "--access-log",
                      "--http2", "--h2c-listen", "--upstream-max-idle-per-endpoint"]),
    ("gantry-controller", ["--source", "--kubeconfig", "--proxy-socket", "--ingress-class",
                           "--namespace", "--leader-elect", "--health-listen", "--admin-listen",
                           "--hostname-ownership"]),
    ("gantry-echo", ["--listen", "--name", "--threads", "--plain"]),
]


@pytest.mark.parametrize("name,flags", HELP, ids=[h[0] for h in HELP])
def test_help_exits_0_and_lists_flags(name, flags):
    out = run(name, ["--help"])
    assert out.returncode == 0, out.stderr
    usage = out.stdout.decode()
    for flag in flags:
        assert flag in usage, f"{flag} missing from {name} --help"
