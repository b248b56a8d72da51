/*
 * mailwarden webscan: a YARA rule set comparable to the code-pattern layer
 * of crates/mailwarden-core/src/webscan (same sinks, sources, decoders,
 * family and placement markers), written for throughput comparisons with
 * `yara -r`. YARA has no tokenizer and no taint, so these rules match the
 * literals and short regexes only: expect more false positives than the
 * Rust scanner (comments, strings) and fewer hits on register_globals-era
 * shells. Our own wording, from published technique descriptions.
 */

rule mw_php_sink_on_request
{
    meta:
        id = "code.exec-request / code.eval-request"
        description = "a command or code sink with request data in its argument"
    strings:
        $php = "<?" ascii
        $s1 = /\b(system|exec|passthru|shell_exec|popen|proc_open|pcntl_exec|eval|assert|create_function)\s*\([^;]{0,120}\$_(GET|POST|REQUEST|COOKIE|FILES|SERVER\s*\[\s*['"]HTTP_)/ nocase
        $s2 = /`[^`]{0,120}\$_(GET|POST|REQUEST|COOKIE)/
        $s3 = /\b(system|passthru|shell_exec|exec)\s*\(\s*getenv\s*\(\s*['"]HTTP_/ nocase
        $s4 = /\b(call_user_func|call_user_func_array|array_map|array_filter)\s*\(\s*\$_(GET|POST|REQUEST|COOKIE)/ nocase
        $s5 = /\$_(GET|POST|REQUEST|COOKIE)\s*\[[^\]]{1,40}\]\s*\(\s*\$_(GET|POST|REQUEST|COOKIE)/ nocase
        $s6 = /php:\/\/input/ nocase
        $run = /\b(eval|assert|include|require)\b/ nocase
    condition:
        $php and (any of ($s1, $s2, $s3, $s4, $s5) or ($s6 and $run))
}

rule mw_php_include_request
{
    meta:
        id = "code.include-request / code.include-wrapper"
    strings:
        $a = /\b(include|include_once|require|require_once)\s*\(?\s*\$_(GET|POST|REQUEST|COOKIE)/ nocase
        $b = /\b(include|include_once|require|require_once)\s*\(?\s*['"](data:|php:\/\/input)/ nocase
    condition:
        any of them
}

rule mw_php_decoder_chain_exec
{
    meta:
        id = "code.decoder-exec / obfuscation.decoder-chain"
        description = "decoders feeding eval/assert, or nested decoders"
    strings:
        $e = /\b(eval|assert|create_function)\s*\(\s*@?\s*(base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|hex2bin|strrev|convert_uudecode|bzdecompress)\s*\(/ nocase
        $n = /\b(gzinflate|gzuncompress|gzdecode|str_rot13|strrev|base64_decode)\s*\(\s*@?\s*(base64_decode|str_rot13|gzinflate|strrev|convert_uudecode)\s*\(/ nocase
    condition:
        any of them
}

rule mw_php_preg_e
{
    meta:
        id = "code.preg-e-modifier"
    strings:
        $a = /preg_replace\s*\(\s*['"][\/#~|!@%][^'"]{0,80}[\/#~|!@%][a-zA-Z]*e[a-zA-Z]*['"]\s*,/ nocase
    condition:
        $a
}

rule mw_php_assembled_names
{
    meta:
        id = "obfuscation.assembled-name"
        description = "chr() chains, hex escapes or str_replace padding spelling sink names"
    strings:
        $chr = /chr\s*\(\s*\d{2,3}\s*\)\s*\.\s*chr\s*\(\s*\d{2,3}\s*\)\s*\.\s*chr\s*\(\s*\d{2,3}\s*\)\s*\.\s*chr\s*\(/ nocase
        $hex_eval = /\\x65\\x76\\x61\\x6c/ nocase
        $hex_b64 = /\\x62\\x61\\x73\\x65\\x36\\x34/ nocase
        $oct_eval = "\\145\\166\\141\\154"
        $split = /['"](ev|ass|sys|bas|gzi|cre)['"]\s*\.\s*['"](al|ert|tem|e64_decode|nflate|ate_function)['"]/ nocase
        $pad = /str_replace\s*\(\s*['"][^'"]{1,4}['"]\s*,\s*['"]['"]\s*,\s*['"][a-z_0-9]{12,60}['"]\s*\)/ nocase
    condition:
        any of them
}

rule mw_php_upload_dropper
{
    meta:
        id = "code.upload-dropper"
    strings:
        $a = /move_uploaded_file\s*\([^;]{0,120},\s*['"][^'"]{0,80}\.(php\d?|phtml|phar)['"]\s*\)/ nocase
    condition:
        $a
}

rule mw_php_mass_mailer
{
    meta:
        id = "code.mass-mailer"
    strings:
        $loop = /\b(foreach|for|while)\s*\(/ nocase
        $mail = /\bmail\s*\([^;]{0,200}\$_(POST|GET|REQUEST)/ nocase
    condition:
        $loop and $mail
}

rule mw_php_reverse_shell
{
    meta:
        id = "code.reverse-shell"
    strings:
        $sock = /\b(fsockopen|socket_create|stream_socket_client|pfsockopen)\s*\(/ nocase
        $sh = /\/bin\/(ba)?sh|cmd\.exe/ nocase
        $run = /\b(proc_open|popen|shell_exec|system|passthru|exec)\s*\(/ nocase
    condition:
        all of them
}

rule mw_php_family_markers
{
    meta:
        id = "code.family-marker"
    strings:
        $wso1 = "FilesMan"
        $wso2 = "wso_version"
        $c99 = /c99(shell|sh_|_sess|_buff|ftpbrute)/ nocase
        $r57 = /r57(shell|_shell)/ nocase
        $b374k = "b374k" nocase
        $godzilla1 = /\$payloadName\s*=/
        $godzilla2 = /\$K\[\$i\s*\+\s*1\s*&\s*15\]/
        $behinder1 = "e45e329feb5d925b"
        $behinder2 = /__invoke\s*\(\s*\$p\s*\)\s*\{\s*eval\s*\(\s*\$p/
        $weevely = /\$kh\s*=\s*["'][0-9a-f]{12}["']\s*;\s*\$kf\s*=\s*["'][0-9a-f]{12}["']/
        $antsword = /eval\s*\(\s*\$_POST\s*\[\s*["']ant["']/ nocase
        $chopper = /<\?php\s+@?eval\s*\(\s*\$_(POST|REQUEST)\s*\[\s*['"]?\w{1,20}['"]?\s*\]\s*\)\s*;?\s*\?>/ nocase
    condition:
        any of them
}

rule mw_webshell_banner
{
    meta:
        id = "code.shell-banner"
    strings:
        $a = /\b(web\s?shell|php\s?shell|back\s?door|hacked\s+by|defaced\s+by|defacer|safe[_ ]?mode\s+bypass|bypass\s+safe[_ ]?mode|priv8|c0ded\s+by)/ nocase
    condition:
        $a
}

rule mw_foreign_shell
{
    meta:
        id = "code.foreign-shell"
    strings:
        $asp_tag = "<%"
        $asp1 = /wscript\.shell|scripting\.filesystemobject|shell\.application|vbscript\.encode/ nocase
        $asp_req = /\brequest\b/ nocase
        $jsp_page = /<%@?\s*page/
        $jsp_rt = /getruntime\s*\(\s*\)|new\s+processbuilder/ nocase
        $jsp_param = /request\.getparameter/ nocase
        $perl = /^\s*#!\S*perl/
        $cgi = /QUERY_STRING|REQUEST_METHOD|CONTENT_LENGTH/
    condition:
        ($asp_tag and $asp1 and $asp_req) or ($jsp_page and $jsp_rt and $jsp_param) or ($perl at 0 and $cgi)
}

rule mw_php_in_image
{
    meta:
        id = "placement.php-in-image"
    strings:
        $php = /<\?php\s/ nocase
    condition:
        (uint16(0) == 0xd8ff or uint32(0) == 0x474e5089 or uint32(0) == 0x38464947) and $php
}

rule mw_htaccess_handler
{
    meta:
        id = "placement.htaccess-handler / placement.auto-prepend"
    strings:
        $addtype = /(AddType|AddHandler)\s+\S*php\S*\s+[^\n]*\.(jpe?g|png|gif|ico|txt|bmp|webp|css|log)\b/ nocase
        $sethandler = /(SetHandler|ForceType)\s+\S*php/ nocase
        $prepend = /auto_(prepend|append)_file\s*=?\s*\S+/ nocase
    condition:
        any of them
}
