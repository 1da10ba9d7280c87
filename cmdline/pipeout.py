# A command line tool piped into one that stops reading (`pumpctl log | head`)
# ends quietly, as a C tool would on SIGPIPE, instead of printing a traceback.
import os
import sys

EXIT_PIPE = 141          # 128 + SIGPIPE: what the shell reports for `yes | head`


def _quiet():
    # Python flushes stdout again at exit: point it at nothing first
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run_quietly(main, argv=None):
    """main(argv) -> exit status; a reader that went away -> EXIT_PIPE.
    A SystemExit (argparse's --help and usage errors) goes on as it was."""
    try:
        status = main(argv)
        sys.stdout.flush()
        return status
    except SystemExit:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet()
        raise
    except BrokenPipeError:
        _quiet()
        return EXIT_PIPE
