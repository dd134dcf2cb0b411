#!/usr/bin/env bash
# Checks that the repository's Markdown files hold: every relative link resolves, and,
# given the output of coring-fault-tests, docs/reliability.md's fault-injection figures
# are the ones it printed.
#
#   scripts/check-docs.sh [--fault-totals LOG] [ROOT]
#
# ROOT is the repository (default: this script's). LOG is the output of a whole run of
# coring-fault-tests (its "[fault totals]" lines); without it only the links are checked.
#
# Links. For each Markdown file (git's tracked and untracked-but-not-ignored ones; every *.md
# outside build trees when ROOT is not a git work tree), outside fenced code blocks and
# code spans:
#   - a link or image, [text](target) or [label]: target, whose target has no scheme
#     (http:, mailto:, ...) must name a file or directory inside ROOT, relative to the
#     file (or to ROOT when it starts with /);
#   - its #anchor, if any, must be a heading of the Markdown file it names (GitHub's
#     anchors: the heading's text, lower case, punctuation dropped, spaces as hyphens,
#     -1, -2, ... for repeats) or an <a name/id> there; #L12 or #L12-L20 on any other
#     file must be within its lines;
#   - a Markdown file named in the prose (README.md, docs/ring.md) must exist: relative
#     to the file, relative to ROOT, or as the name of some Markdown file of ROOT.
#
# Fault totals. Every figure of the "Figures" table of docs/reliability.md's fault
# injection section — seed runs, faults by kind, bytes verified and reported, errors by
# name, retried and reported, connections, files — must equal the run's. The workloads
# replay exactly, so the totals are the same in every run on one kernel; on a kernel
# other than the one the page names ("Linux X.Y") the figures are not compared.
#
# Prints each failure as FILE:LINE: ... (or what differs) and exits 1 if there was any,
# 0 otherwise. Needs only bash, git (optional) and perl.
set -euo pipefail

fault_totals=""
if [[ ${1:-} == --fault-totals ]]; then
  fault_totals="$(realpath "${2:?--fault-totals needs the log of a coring-fault-tests run}")"
  shift 2
fi
root="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)"
cd "$root"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.md' |
    while IFS= read -r f; do if [[ -f $f ]]; then printf '%s\n' "$f"; fi; done | sort -u)
else
  mapfile -t files < <(find . -name '*.md' -not -path './build*' -not -path './.git/*' |
    sed 's|^\./||' | sort)
fi
if ((${#files[@]} == 0)); then
  echo "check-docs: no Markdown files under $root" >&2
  exit 1
fi

status=0
perl -CSDA -Mutf8 -w - "$root" "${files[@]}" <<'PERL' || status=1
use strict;
use File::Basename qw(dirname basename);
use File::Spec;
use Cwd qw(abs_path);

my ($root, @files) = @ARGV;
my %markdown_names = map { basename($_) => 1 } @files;
my (%anchors_of, %lines_of);
my $failures = 0;
my $links = 0;

sub fail {
  my ($file, $line, $message) = @_;
  print "$file:$line: $message\n";
  ++$failures;
}

# The lines of a file with fenced code blocks blanked (line numbers kept).
sub prose_lines {
  my ($path) = @_;
  open(my $fh, '<:encoding(UTF-8)', $path) or die "check-docs: $path: $!\n";
  my @lines = <$fh>;
  close $fh;
  chomp @lines;
  my $fence;
  for my $line (@lines) {
    if (defined $fence) {
      $fence = undef if $line =~ /^\s{0,3}\Q$fence\E[`~]*\s*$/;
      $line = '';
    } elsif ($line =~ /^\s{0,3}(`{3,}|~{3,})/) {
      $fence = $1;
      $line = '';
    }
  }
  return @lines;
}

# A heading's text as GitHub renders it, then its anchor (github-slugger).
sub slug {
  my ($text) = @_;
  $text =~ s/!?\[([^\]]*)\]\([^)]*\)/$1/g;  # links and images: their text
  $text =~ s/<[^>]+>//g;                    # inline HTML
  $text =~ s/`//g;
  $text =~ s/(\*+|~~)//g;
  $text =~ s/(^|[^\w])_+(\w(?:.*?\w)?)_+(?=[^\w]|$)/$1$2/g;  # _emphasis_
  $text = lc $text;
  $text =~ s/[^\p{L}\p{N}\p{M}\p{Pc}\- ]//g;
  $text =~ s/ /-/g;
  return $text;
}

sub anchors {
  my ($path) = @_;
  return $anchors_of{$path} if $anchors_of{$path};
  my (%anchors, %seen);
  my @lines = prose_lines($path);
  for my $i (0 .. $#lines) {
    my $line = $lines[$i];
    my $heading;
    if ($line =~ /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/) {
      $heading = $1;
    } elsif ($i > 0 && $line =~ /^\s{0,3}(=+|-+)\s*$/ && $lines[$i - 1] =~ /\S/ &&
             $lines[$i - 1] !~ /^\s*([-*+]|\d+\.)\s/ && $lines[$i - 1] !~ /^\s*\|/) {
      $heading = $lines[$i - 1];  # setext heading
    }
    if (defined $heading) {
      my $base = slug($heading);
      my $anchor = $base;
      $anchor = $base . '-' . $seen{$base} if $seen{$base};
      ++$seen{$base};
      $anchors{$anchor} = 1;
    }
    $anchors{$1} = 1 while $line =~ /<a\s[^>]*?\b(?:name|id)\s*=\s*"([^"]+)"/g;
  }
  return $anchors_of{$path} = \%anchors;
}

sub line_count {
  my ($path) = @_;
  return $lines_of{$path} if defined $lines_of{$path};
  open(my $fh, '<:raw', $path) or return 0;
  my $n = 0;
  ++$n while <$fh>;
  close $fh;
  return $lines_of{$path} = $n;
}

sub inside_root {
  my ($path) = @_;
  my $real = abs_path($path);
  return defined $real && ($real eq $root || index($real, "$root/") == 0);
}

sub check_link {
  my ($file, $line_no, $target) = @_;
  return if $target =~ m{^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)};  # a URL, not a path
  ++$links;
  my ($path, $anchor) = $target =~ /^([^#]*)(?:#(.*))?$/;
  $path =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
  my $resolved;
  if ($path eq '') {
    $resolved = $path = $file;
  } elsif ($path =~ m{^/}) {
    $resolved = File::Spec->catfile($root, $path);
  } else {
    $resolved = File::Spec->catfile(dirname($file), $path);
  }
  if (!-e $resolved) {
    fail($file, $line_no, "link to '$target': $path does not exist");
    return;
  }
  if (!inside_root($resolved)) {
    fail($file, $line_no, "link to '$target': $path is outside the repository");
    return;
  }
  return if !defined $anchor || $anchor eq '';
  if (-d $resolved) {
    fail($file, $line_no, "link to '$target': an anchor on a directory");
  } elsif ($resolved =~ /\.md$/i) {
    fail($file, $line_no, "link to '$target': no heading or anchor '#$anchor' in $path")
      unless anchors($resolved)->{$anchor};
  } elsif ($anchor =~ /^L(\d+)(?:-L(\d+))?$/) {
    my $last = defined $2 ? $2 : $1;
    fail($file, $line_no, "link to '$target': $path has only " . line_count($resolved) . " lines")
      if $last > line_count($resolved) || $1 < 1;
  } else {
    fail($file, $line_no, "link to '$target': '#$anchor' on a file that is not Markdown");
  }
}

# A Markdown file named in prose: a relative path, a path from the root, or the name of
# one of the repository's Markdown files.
sub check_named_markdown {
  my ($file, $line_no, $name) = @_;
  return if -e File::Spec->catfile(dirname($file), $name);
  return if -e File::Spec->catfile($root, $name);
  return if $name !~ m{/} && $markdown_names{$name};
  fail($file, $line_no, "names $name, which is not in the repository");
}

for my $file (@files) {
  my @lines = prose_lines($file);
  for my $i (0 .. $#lines) {
    my $line = $lines[$i];
    $line =~ s/(`+)(?:(?!\1).)+?\1//g;  # code spans
    my $line_no = $i + 1;
    while ($line =~ /\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g) {
      (my $target = $1) =~ s/^<(.*)>$/$1/;
      check_link($file, $line_no, $target);
    }
    if ($line =~ /^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)/) {
      (my $target = $1) =~ s/^<(.*)>$/$1/;
      check_link($file, $line_no, $target);
      next;  # a link definition, no prose
    }
    while ($line =~ /\b(?:href|src)\s*=\s*"([^"]+)"/g) {
      check_link($file, $line_no, $1);
    }
    (my $prose = $line) =~ s/\]\([^)]*\)/]/g;  # link targets were checked above
    $prose =~ s{\b[A-Za-z][A-Za-z0-9+.-]*://\S+}{}g;
    while ($prose =~ m{(?<![\w./-])((?:\.\.?/)?[\w.-]+(?:/[\w.-]+)*\.md)\b}g) {
      check_named_markdown($file, $line_no, $1);
    }
  }
}

printf "check-docs: %d Markdown files, %d relative links, %d broken\n",
  scalar(@files), $links, $failures;
exit($failures ? 1 : 0);
PERL

[[ -n $fault_totals ]] || exit "$status"

perl -w - docs/reliability.md "$fault_totals" "$(uname -r)" <<'PERL' || status=1
use strict;

my ($page, $log, $release) = @ARGV;
sub slurp {
  my ($path) = @_;
  open(my $fh, '<', $path) or die "check-docs: $path: $!\n";
  local $/;
  return <$fh>;
}
my $doc = slurp($page);
my $run = slurp($log);

my ($kernel) = $doc =~ /\bLinux (\d+\.\d+)\b/ or die "check-docs: $page names no kernel (Linux X.Y)\n";
my ($running) = $release =~ /^(\d+\.\d+)/;
if ($running ne $kernel) {
  print "check-docs: ${page}'s fault figures are for Linux $kernel, this is $release: not compared\n";
  exit 0;
}

# The run's totals, by name.
my %ran;
$run =~ /\[fault totals\] seed runs (\d+); faults injected (\d+): short counts (\d+), errors (\d+), multishot ends (\d+), busy enters (\d+), reordered batches (\d+), overflow flags (\d+)/
  or die "check-docs: no fault totals in $log (a whole run of coring-fault-tests prints them)\n";
@ran{qw(seed_runs faults short_counts errors multishot_ends busy_enters reordered overflow_flags)} =
  ($1, $2, $3, $4, $5, $6, $7, $8);
$run =~ /\[fault totals\] bytes verified (\d+), bytes reported lost (\d+); errors retried (\d+), reported (\d+); connections (\d+) \((\d+) complete\); files (\d+)/
  or die "check-docs: $log: no byte and connection totals\n";
@ran{qw(bytes_verified bytes_reported retried reported connections complete files)} =
  ($1, $2, $3, $4, $5, $6, $7);
$run =~ /\[fault totals\] errors seen by the workloads:(.*)/ or die "check-docs: $log: no errors seen\n";
my $seen = $1;
$ran{errors_seen} = 0;
while ($seen =~ /([\w-]+) (\d+);/g) {
  $ran{"seen $1"} = $2;
  $ran{errors_seen} += $2;
}

# The page's figures, by the same names: its table rows, thousands separators dropped.
(my $table = $doc) =~ s/(?<=\d),(?=\d{3}\b)//g;
my %documented;
sub row {
  my ($label) = @_;
  $table =~ /^\| \Q$label\E[^|]*\| ([^\n]*?) \|$/m or die "check-docs: $page has no '$label' row\n";
  return $1;
}
(row('seed runs') =~ /^(\d+)/) and $documented{seed_runs} = $1;
if (row('faults injected') =~ /^(\d+): short counts (\d+); errors (\d+); multishot ends (\d+); busy enters (\d+); reordered batches (\d+); CQ-overflow flags (\d+)/) {
  @documented{qw(faults short_counts errors multishot_ends busy_enters reordered overflow_flags)} =
    ($1, $2, $3, $4, $5, $6, $7);
}
(row('bytes verified') =~ /^(\d+)/) and $documented{bytes_verified} = $1;
(row('bytes reported') =~ /^(\d+)/) and $documented{bytes_reported} = $1;
if (row('errors the workloads got back') =~ /^(\d+): (.*?); (\d+) retried.*?, (\d+) reported/) {
  @documented{qw(errors_seen retried reported)} = ($1, $3, $4);
  my $names = $2;
  $names =~ s/\([^)]*\)//g;
  $documented{"seen $1"} = $2 while $names =~ /([A-Z][A-Z0-9]+) (\d+)/g;
}
(row('connections') =~ /^(\d+), of which (\d+)/) and @documented{qw(connections complete)} = ($1, $2);
(row('files') =~ /^(\d+)/) and $documented{files} = $1;

my $differ = 0;
for my $name (sort keys %{{%ran, %documented}}) {
  my $want = $ran{$name} // 'absent';
  my $have = $documented{$name} // 'absent';
  next if $want eq $have;
  print "$page: fault figure '$name' is $have, the run printed $want\n";
  ++$differ;
}
printf "check-docs: %d fault figures of %s, %d differ from %s\n",
  scalar(keys %ran), $page, $differ, $log;
exit($differ ? 1 : 0);
PERL
exit "$status"
