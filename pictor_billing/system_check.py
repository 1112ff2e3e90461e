"""Check the system libraries WeasyPrint needs, and say how to install what is missing.

Run by `make run` and `make test` before anything else (python -m pictor_billing.system_check).
"""

import ctypes.util
import sys

DEBIAN_PACKAGES = {
    "pango-1.0": "libpango-1.0-0",
    "pangoft2-1.0": "libpangoft2-1.0-0",
    "harfbuzz": "libharfbuzz0b",
    "harfbuzz-subset": "libharfbuzz-subset0",
    "fontconfig": "libfontconfig1",
}


def missing_libraries() -> list[tuple[str, str]]:
    """(library, Debian package) for each library the dynamic loader cannot find."""
    return [(lib, pkg) for lib, pkg in DEBIAN_PACKAGES.items() if ctypes.util.find_library(lib) is None]


def main() -> int:
    missing = missing_libraries()
    required = [(lib, pkg) for lib, pkg in missing if lib != "harfbuzz-subset"]
    if ("harfbuzz-subset", "libharfbuzz-subset0") in missing:
        print("warning: libharfbuzz-subset0 is missing; invoice PDFs render about 3x slower without it.\n"
              "         Install it with: sudo apt-get install libharfbuzz-subset0", file=sys.stderr)
    if required:
        names = " ".join(pkg for _, pkg in required)
        print(f"error: WeasyPrint (invoice PDFs) needs system libraries that are missing: "
              f"{', '.join(lib for lib, _ in required)}.\n"
              f"       On Debian/Ubuntu: sudo apt-get install {names} libharfbuzz-subset0\n"
              f"       Elsewhere: https://doc.courtbouillon.org/weasyprint/stable/first_steps.html", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
