#!/usr/bin/env python3
"""Record exim -brw's answers for every configuration here and every address in
``addresses`` into <name>.exim.out (run by hand where Debian's exim4 is installed;
the configurations must be mode 644 for exim4 to read them)."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    addresses = (HERE / "addresses").read_text().split("\n")[:-1]
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for conf in sorted(HERE.glob("*.conf")):
            path = Path(tmp) / conf.name
            path.write_text(conf.read_text().replace("DATA", str(HERE)))
            path.chmod(0o644)
            out = []
            for address in addresses:
                run = subprocess.run(["exim4", "-C", str(path), "-brw", address],
                                     capture_output=True, text=True, check=False)
                out.append(f"== {address}\n{run.stdout}")
            (HERE / (conf.stem + ".exim.out")).write_text("".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
