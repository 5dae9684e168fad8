#!/usr/bin/env bash
# The `student` branch: this commit's tree with every chapter notebook replaced by its
# student copy (tools/student_notebooks.py: exercises as plain Markdown that renders in
# Colab and Jupyter, solutions left out). The book's Colab and Binder buttons open the
# notebooks of that branch (_config.yml, html_theme_options.repository_branch), so a
# reader who launches a chapter gets no solutions in plain view; the solutions stay on
# the book's pages (folded) and in main's notebooks. CI runs this on every push to main
# and force-pushes the branch (.github/workflows/book.yml); run by hand, it only
# moves the local branch.
#
#     bash tools/student_branch.sh [BRANCH]      # default: student
#
# Needs git and Python 3.10 or newer, nothing else; the caller's working tree and index
# are left untouched (the commit is made in a temporary worktree of HEAD).
set -euo pipefail
branch=${1:-student}
cd "$(git rev-parse --show-toplevel)"
source=$(git rev-parse HEAD)
copies=$(mktemp -d)
work=$(mktemp -d)
trap 'git worktree remove --force "$work" 2>/dev/null || true; rm -rf "$copies" "$work"' EXIT
python3 tools/student_notebooks.py "$copies" >/dev/null
git worktree add --quiet --detach "$work" "$source"
for copy in "$copies"/*.ipynb; do
  name=$(basename "$copy")
  if [ ! -f "$work/notebooks/$name" ]; then
    echo "error: $name is not a chapter of $source" >&2
    exit 1
  fi
  cp "$copy" "$work/notebooks/$name"
done
git -C "$work" add notebooks
git -C "$work" -c user.name="rnnbook student copies" -c user.email="student-copies@rnnbook.invalid" \
  commit --quiet -m "Student copies of the chapters at $source (tools/student_branch.sh): no solutions; exercises in plain Markdown"
git branch --force "$branch" "$(git -C "$work" rev-parse HEAD)"
echo "$branch: $(git rev-parse --short "$branch"), the student copies of $(git rev-parse --short "$source")"
