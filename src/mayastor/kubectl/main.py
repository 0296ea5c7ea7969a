"""``kubectl-mayastor`` (also ``kubectl mayastor``): the operator's command line.

Parses the command line (`mayastor.kubectl.parser`), opens a `RestClient` to the core
agent and runs the command's handler. Exit status: 0 done; 1 refused by the API
(``error: <kind>: <message>`` on stderr) or not all done; 2 bad usage; 3 the REST
API cannot be reached (the message names the URL and how to set it).
"""

from __future__ import annotations

import os
import sys

from mayastor.credentials.rest_client import CA_ENV, TOKEN_ENV, RestClientCredentials
from mayastor.errors import InvalidArgument
from mayastor.kubectl.failures import CommandFailed
from mayastor.kubectl.output import Output, OutputFormat
from mayastor.kubectl.parser import REST_ENV, build_parser
from mayastor.restclient import RestClient, RestError, RestUnreachable

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (bad usage exits 2 from argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(OutputFormat(args.output))
    try:
        credentials = RestClientCredentials.from_flags(args)
    except InvalidArgument as exc:
        parser.error(str(exc))
    try:
        with RestClient(args.rest, timeout=args.timeout, credentials=credentials) as client:
            args.handler(client, args, out)
    except RestUnreachable as exc:
        if "CERTIFICATE_VERIFY_FAILED" in exc.reason:
            hint = f"give the CA that signed its certificate with --ca-cert or ${CA_ENV}."
        else:
            hint = f"is the core agent running there? Set its URL with -r/--rest or ${REST_ENV}."
        print(
            f"error: cannot reach the REST API at {exc.url}: {exc.reason}; {hint}", file=sys.stderr
        )
        return EXIT_UNREACHABLE
    except RestError as exc:
        print(f"error: {exc.kind}: {exc.message}", file=sys.stderr)
        if exc.status == 401:
            print(f"hint: give a token with --token-file FILE or ${TOKEN_ENV}", file=sys.stderr)
        return EXIT_REFUSED
    except CommandFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except BrokenPipeError:
        # The reader went away (`| head`); what is left unprinted is not wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
