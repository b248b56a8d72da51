#!/usr/bin/perl
# mkbig.pl - make an N-times larger Postfix log out of a real one, for benchmarks.
#
#   perl bench/mkbig.pl [--copies N] [--shift-days D] [--year Y] IN > OUT
#
# OUT is N copies of IN, one after the other. Copy k (k = 0 .. N-1):
#
#   * has every timestamp moved k*D days later, so that with D equal to the
#     number of days IN covers, the copies follow each other and OUT is one
#     long, time-ordered log (the corpus log covers 3 days: 10 copies shifted
#     by 3 days make 30 consecutive days);
#   * has every Postfix queue id rewritten so that no two copies share one
#     (otherwise a stitcher would glue copy 1's messages onto copy 0's).
#
# Timestamps. Both framings are handled, per line:
#   RFC 3339  2023-03-14T00:08:33.579644+01:00 host prog[pid]: ...
#             only the date is changed; time of day, fraction and UTC offset
#             are kept as written (the offset stays valid: it is explicit).
#   classic   Mar 14 00:08:33 host prog[pid]: ...
#             the year is not written, so the calendar arithmetic uses --year
#             (default 2023, the corpus's year; it matters for February 29)
#             and follows December -> January crossings inside IN. The day
#             is written space-padded to two columns ("Apr  1"), as syslog
#             daemons do.
#   A line with neither form is copied unchanged and counted on stderr.
#
# Queue ids. Only long queue ids (enable_long_queue_ids = yes) are handled:
# 10 base-52 time digits, the separator 'z', then the inode number in base
# 51. Postfix's alphabet for them is 0-9 and the consonants (no vowels), so
# a vowel never occurs in a real long queue id. Copy k > 0 appends the k-th
# vowel of "AEIOUaeiou" to every queue id:
#     copy 0  4PbC4x469Jz3tBr   (unchanged)
#     copy 1  4PbC4x469Jz3tBrA
#     copy 9  4PbC4x469Jz3tBro
# Appending (rather than replacing a character) keeps the ids of one copy
# distinct from each other, and the vowel keeps every copy distinct from every
# other copy and from the original; the result still has the long-id shape
# (12 or more alphanumerics with 'z' at index 10). Hence at most 10 copies.
#
# Which tokens are queue ids is learned from IN first: a token of long-id shape
# seen where Postfix writes a queue id ("prog[pid]: ID: ...", "queued as ID",
# amavis's "Queue-ID: ID" and "queued_as: ID", "notification: ID"). Every whole
# occurrence of such an id is then rewritten, wherever it is on the line (so
# Postfix-generated Message-IDs like <ID@host> follow along), while look-alike
# tokens that are not queue ids (a local part such as zzzzzzzzzzzzzzzzzezihe@,
# an amavis mail_id) are left alone. Short hexadecimal queue ids would need a
# different scheme; the script refuses input that has them.
#
# Lines are handled as bytes (no decoding), so invalid UTF-8 in the log is
# copied through as is. The whole input is held in memory (about 10 MB for the
# corpus log).

use strict;
use warnings;
use Getopt::Long qw(GetOptions);
use Time::Local qw(timegm);

my $copies     = 10;
my $shift_days = 3;
my $year       = 2023;
GetOptions(
    'copies=i'     => \$copies,
    'shift-days=i' => \$shift_days,
    'year=i'       => \$year,
) && @ARGV == 1
  or die "usage: $0 [--copies N] [--shift-days D] [--year Y] IN > OUT\n";
die "$0: --copies must be 1..10\n" unless $copies >= 1 && $copies <= 10;

my @marker = ('', split //, 'AEIOUaeio');    # copy k appends $marker[k]

my @MON = qw(Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec);
my %MON = map { $MON[$_] => $_ } 0 .. 11;

# A long queue id as a whole token (not part of a longer alphanumeric run).
my $QID = qr/(?<![0-9A-Za-z])([0-9A-Za-z]{10}z[0-9A-Za-z]{1,13})(?![0-9A-Za-z])/;

# --- read IN, learn its queue ids -------------------------------------------
my $in = $ARGV[0];
open my $fh, '<:raw', $in or die "$0: $in: $!\n";
my @lines = <$fh>;
close $fh;

my %is_qid;
for (@lines) {
    $is_qid{$1} = 1
      while /(?:\]: |queued as |Queue-ID: |queued_as: |notification: )$QID/g;
    die "$0: $in has short (hexadecimal) queue ids; this generator only rewrites long ones\n"
      if /\]: [0-9A-F]{6,16}: /;
}
die "$0: no long queue ids found in $in\n" unless %is_qid;
for (keys %is_qid) {
    die "$0: queue id $_ contains a vowel; the copy markers would not be unique\n"
      if /[AEIOUaeiou]/;
}

# --- date arithmetic, cached (a log has few distinct dates) -----------------
# Shift a calendar date by $days; returns (year, month 1-12, day).
sub shift_date {
    my ($y, $m, $d, $days) = @_;
    my @t = gmtime(timegm(0, 0, 12, $d, $m - 1, $y) + $days * 86_400);
    return ($t[5] + 1900, $t[4] + 1, $t[3]);
}

my (%rfc_cache, %classic_cache);

# "2023-03-14" + days -> "2023-03-17"
sub rfc_date {
    my ($date, $days) = @_;
    return $rfc_cache{"$date/$days"} //= do {
        my ($y, $m, $d) = split /-/, $date;
        sprintf '%04d-%02d-%02d', shift_date($y, $m, $d, $days);
    };
}

# ("Mar", 30, 2023) + days -> "Apr  2"
sub classic_date {
    my ($mon, $day, $y, $days) = @_;
    return $classic_cache{"$mon/$day/$y/$days"} //= do {
        my (undef, $m, $d) = shift_date($y, $MON{$mon} + 1, $day, $days);
        sprintf '%s %2d', $MON[$m - 1], $d;
    };
}

# --- write the copies -------------------------------------------------------
my $unstamped = 0;
for my $k (0 .. $copies - 1) {
    my $days  = $k * $shift_days;
    my $mark  = $marker[$k];
    my $cyear = $year;    # year of the current classic line, in this copy
    my $prev_mon;
    my $out = '';
    for my $line (@lines) {
        my $l = $line;    # a copy: @lines is reused for every copy
        if ($days) {
            if ($l =~ /^(\d{4}-\d{2}-\d{2})T/) {
                substr($l, 0, 10) = rfc_date($1, $days);
            } elsif ($l =~ /^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) /) {
                my ($mon, $day) = ($1, $2 + 0);
                # Dec -> Jan inside IN: the year moves on.
                $cyear++ if defined $prev_mon && $MON{$mon} < $prev_mon;
                $prev_mon = $MON{$mon};
                substr($l, 0, 6) = classic_date($mon, $day, $cyear, $days);
            } else {
                $unstamped++;
            }
        }
        # Cheap pre-check: every long queue id contains a 'z'.
        $l =~ s/$QID/exists $is_qid{$1} ? $1 . $mark : $1/ge if $mark && index($l, 'z') >= 0;
        $out .= $l;
    }
    print $out or die "$0: write: $!\n";
}
close STDOUT or die "$0: write: $!\n";
warn "$0: $unstamped lines without a recognised timestamp were copied unchanged\n" if $unstamped;
