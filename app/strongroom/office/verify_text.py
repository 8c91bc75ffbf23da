"""VERIFY.txt and check_proofs.sh: how a stranger checks a sealed bundle by hand.

Every line of VERIFY.txt that starts with ``$ `` is a command to type, in
order, in an empty folder holding the .zip; each check exits non-zero (and
says so) when the bundle was altered. The tools are a POSIX shell, GNU
coreutils, openssl 3, unzip, sed and diff: no Python, no Strongroom. The
tests run these very lines, literally, with a PATH that holds no python.

The labels of the two fingerprints are the ones the web UI shows (Identity
page and page footers) and `strongroom fingerprint` prints, so a reader finds
on the box exactly the words VERIFY.txt names.
"""

from __future__ import annotations

# The msgids (English) and their French text, as in the web catalogues.
SIGNING_LABEL_EN = "Signing key fingerprint (sealed exports, SHA-256)"
SIGNING_LABEL_FR = "Empreinte de la clé de signature (exports scellés, SHA-256)"
PROTOCOL_LABEL_EN = "Protocol fingerprint (phone pairing)"
PROTOCOL_LABEL_FR = "Empreinte du protocole (appairage des téléphones)"
IDENTITY_PAGE_EN = "Identity"
IDENTITY_PAGE_FR = "Identité"

CHECK_PROOFS_SH_NAME = "check_proofs.sh"
EXPECTED_PLACEHOLDER_FR = "COLLEZ_ICI_L_EMPREINTE_DU_BOITIER"
EXPECTED_PLACEHOLDER_EN = "PASTE_THE_BOX_FINGERPRINT_HERE"

# The container seal: the zip comment ends the file with this prefix and the
# base64 of the box's Ed25519 signature (88 characters).
SEAL_PREFIX_TEXT = "strongroom-seal-v1 "
SEAL_B64_CHARS = 88
SEAL_TOTAL = len(SEAL_PREFIX_TEXT) + SEAL_B64_CHARS


CHECK_PROOFS_SH = r"""# check_proofs.sh: re-check this bundle's log proofs and signatures by hand.
# POSIX sh, GNU coreutils and openssl only. Run it in the bundle's folder:
#     sh check_proofs.sh
# It prints one line per check and exits 0 only if every check passes.
#
# - proofs/L<n>.leaf: its hash SHA-256(0x00 || leaf) is combined with each
#   32-byte node of proofs/L<n>.path in turn (RFC 9162 section 2.1.3.2,
#   node = SHA-256(0x01 || left || right)); the result must be the root in
#   sth.txt (line 4), for the tree size on line 2.
# - records/L<n>.cbor: its SHA-256 must be inside its leaf, and the phone's
#   signature records/L<n>.sig must verify with the phone key that
#   records/L<n>.json names.
# - attachments/L<n>-<name>: its SHA-256 must be inside the signed record L<n>.
# - consistency/S<m>.txt: an earlier signed head; S<m>.path must prove that
#   the log of sth.txt extends it (RFC 9162 section 2.1.4.2).
size=$(sed -n 2p sth.txt)
root=$(sed -n 4p sth.txt)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bad=0
proofs=0
hex() { od -An -v -tx1 | tr -d ' \n'; }
fail() { echo "FAILED  $1"; bad=$((bad + 1)); }
hash2() { (printf '\001'; cat "$1" "$2") | openssl dgst -sha256 -binary > "$work/n"; }

for leaf in proofs/*.leaf; do
  [ -e "$leaf" ] || continue
  stem=${leaf#proofs/}; stem=${stem%.leaf}
  fn=$(echo "$stem" | sed 's/^L0*//'); fn=${fn:-0}
  sn=$((size - 1))
  path=proofs/$stem.path
  nodes=0; [ -f "$path" ] && nodes=$(( $(wc -c < "$path") / 32 ))
  (printf '\000'; cat "$leaf") | openssl dgst -sha256 -binary > "$work/r"
  ok=1; [ "$fn" -lt "$size" ] || ok=0
  i=0
  while [ $ok = 1 ] && [ $i -lt $nodes ]; do
    if [ $sn -eq 0 ]; then ok=0; break; fi
    tail -c +$((i * 32 + 1)) "$path" | head -c 32 > "$work/p"
    if [ $((fn & 1)) -eq 1 ] || [ $fn -eq $sn ]; then
      hash2 "$work/p" "$work/r"
      while [ $((fn & 1)) -eq 0 ] && [ $fn -ne 0 ]; do fn=$((fn >> 1)); sn=$((sn >> 1)); done
    else
      hash2 "$work/r" "$work/p"
    fi
    mv "$work/n" "$work/r"
    fn=$((fn >> 1)); sn=$((sn >> 1)); i=$((i + 1))
  done
  if [ $ok = 1 ] && [ $sn -eq 0 ] && [ "$(hex < "$work/r")" = "$root" ]; then
    echo "OK      $leaf is in the signed log"; proofs=$((proofs + 1))
  else
    fail "$leaf: its audit path does not lead to the root in sth.txt"
  fi
done

for record in records/*.cbor; do
  [ -e "$record" ] || continue
  stem=${record#records/}; stem=${stem%.cbor}
  digest=$(sha256sum < "$record" | cut -c1-64)
  leafhex=""; [ -f "proofs/$stem.leaf" ] && leafhex=$(hex < "proofs/$stem.leaf")
  case $leafhex in
    *5820$digest*) echo "OK      $record is the record of leaf $stem" ;;
    *) fail "$record: not the record its log leaf commits to" ;;
  esac
  key=$(sed -n 's/^ *"pem": "\(devices\/D[0-9]*\.pem\)",*$/\1/p' "records/$stem.json")
  (printf 'strongroom-record-v1\000'; cat "$record") > "$work/m"
  if [ -n "$key" ] && openssl pkeyutl -verify -pubin -inkey "$key" -rawin \
      -in "$work/m" -sigfile "records/$stem.sig" > /dev/null 2>&1; then
    echo "OK      $record is signed by the phone key $key"
  else
    fail "$record: the phone's signature records/$stem.sig does not verify"
  fi
done

for file in attachments/*; do
  [ -e "$file" ] || continue
  stem=${file#attachments/}; stem=${stem%%-*}
  digest=$(sha256sum < "$file" | cut -c1-64)
  recordhex=""; [ -f "records/$stem.cbor" ] && recordhex=$(hex < "records/$stem.cbor")
  case $recordhex in
    *5820$digest*) echo "OK      $file is the file signed in records/$stem.cbor" ;;
    *) fail "$file: not the file whose SHA-256 records/$stem.cbor signs" ;;
  esac
done

# consistency/S<m>.txt: an earlier head the box signed, and .path the proof
# (RFC 9162 section 2.1.4.2) that the log of sth.txt extends it.
for old in consistency/*.txt; do
  [ -e "$old" ] || continue
  base=${old%.txt}
  first=$(sed -n 2p "$old"); oldroot=$(sed -n 4p "$old")
  nodes=0; [ -f "$base.path" ] && nodes=$(( $(wc -c < "$base.path") / 32 ))
  ok=1
  openssl pkeyutl -verify -pubin -inkey box.pem -rawin -in "$old" -sigfile "$base.sig" \
    > /dev/null 2>&1 || ok=0
  [ "$nodes" -gt 0 ] && [ "$first" -gt 0 ] && [ "$first" -lt "$size" ] || ok=0
  fn=$((first - 1)); sn=$((size - 1))
  while [ $ok = 1 ] && [ $((fn & 1)) -eq 1 ]; do fn=$((fn >> 1)); sn=$((sn >> 1)); done
  head -c 32 "$base.path" > "$work/fr"; head -c 32 "$base.path" > "$work/sr"
  i=1
  while [ $ok = 1 ] && [ $i -lt $nodes ]; do
    if [ $sn -eq 0 ]; then ok=0; break; fi
    tail -c +$((i * 32 + 1)) "$base.path" | head -c 32 > "$work/p"
    if [ $((fn & 1)) -eq 1 ] || [ $fn -eq $sn ]; then
      hash2 "$work/p" "$work/fr"; mv "$work/n" "$work/fr"
      hash2 "$work/p" "$work/sr"; mv "$work/n" "$work/sr"
      while [ $((fn & 1)) -eq 0 ] && [ $fn -ne 0 ]; do fn=$((fn >> 1)); sn=$((sn >> 1)); done
    else
      hash2 "$work/sr" "$work/p"; mv "$work/n" "$work/sr"
    fi
    fn=$((fn >> 1)); sn=$((sn >> 1)); i=$((i + 1))
  done
  if [ $ok = 1 ] && [ $sn -eq 0 ] && [ "$(hex < "$work/fr")" = "$oldroot" ] \
      && [ "$(hex < "$work/sr")" = "$root" ]; then
    echo "OK      the log of sth.txt extends the earlier head $old"
  else
    fail "$old: not a signed head this log is proven to extend"
  fi
done

[ $proofs -gt 0 ] || fail "no inclusion proof was checked"
if [ $bad -eq 0 ]; then
  echo "ALL CHECKS PASSED ($proofs inclusion proofs against sth.txt)"
else
  echo "$bad CHECK(S) FAILED: this bundle must not be trusted"
  exit 1
fi
"""


def openssl_verify_command(message: str, signature: str, key: str = "box.pem") -> str:
    """The exact openssl line that checks a raw Ed25519 signature with the box's key."""
    return f"openssl pkeyutl -verify -pubin -inkey {key} -rawin -in {message} -sigfile {signature}"


def envelope_fr(root: str, zip_name: str, fingerprint: str) -> str:
    return f"""\
--- FRANÇAIS ---------------------------------------------------------------

Copiez {zip_name} seul dans un dossier vide, ouvrez un terminal dans ce
dossier et tapez, dans l'ordre, chaque ligne qui commence par « $ » (sans le
« $ »). Chaque vérification qui échoue le dit (FAILED, « Signature
Verification Failure », une différence affichée par diff) et rend un code de
sortie non nul : le dossier a alors été modifié après sa création.
Outils : sh, GNU coreutils, openssl 3, unzip, sed et diff (diffutils). Pas de
Python, pas de logiciel Strongroom.

1. Préparez la vérification. Si vous avez renommé le fichier, corrigez la
   première ligne. Remplacez {EXPECTED_PLACEHOLDER_FR} par l'empreinte que
   montre le boîtier lui-même (pas celle de ce fichier) : dans son interface
   web, page « {IDENTITY_PAGE_FR} » (menu du haut, et bas de chaque page), ligne
   « {SIGNING_LABEL_FR} » ; ou sur le boîtier la commande
   « strongroom fingerprint ».
    $ Z={zip_name}
    $ R={root}
    $ EXPECTED={EXPECTED_PLACEHOLDER_FR}
    $ unzip -q "$Z"

2. La clé qui a signé ce dossier est-elle celle du boîtier ? Réponse
   attendue : « key.der: OK » (ou « Réussi »).
    $ openssl pkey -pubin -in "$R/box.pem" -outform DER -out key.der
    $ echo "$EXPECTED  key.der" | sha256sum -c
   Ce dossier contient la clé {fingerprint} ;
   cela ne prouve rien tant qu'elle n'est pas égale à celle du boîtier.

3. Le fichier .zip est-il celui que le boîtier a scellé, et ne contient-il
   que les fichiers qu'il a listés ? Le sceau (les 88 derniers octets du .zip,
   son commentaire) est la signature par le boîtier de l'empreinte SHA-256 de
   tout ce qui le précède. diff ne doit rien afficher.
    $ N=$(( $(wc -c < "$Z") - {SEAL_TOTAL} ))
    $ (echo strongroom-zip-v1; head -c "$N" "$Z" | sha256sum | cut -c1-64) > seal.txt
    $ tail -c {SEAL_B64_CHARS} "$Z" | base64 -d > seal.sig
    $ {openssl_verify_command("seal.txt", "seal.sig", '"$R/box.pem"')}
    $ unzip -Z1 "$Z" | LC_ALL=C sort > found.txt
    $ sed "s|^[0-9a-f]*  |$R/|" "$R/MANIFEST.sha256" > listed.txt
    $ printf '%s\\n' "$R/MANIFEST.sha256" "$R/MANIFEST.digest" "$R/manifest.sig" >> listed.txt
    $ LC_ALL=C sort -o listed.txt listed.txt
    $ diff listed.txt found.txt

4. La liste des fichiers est-elle signée par le boîtier, et chaque fichier
   est-il celui qu'elle nomme ? Le boîtier signe MANIFEST.digest, une ligne qui
   donne l'empreinte SHA-256 de la liste MANIFEST.sha256 (sha256sum n'affiche
   rien si tout est juste).
    $ cd "$R"
    $ {openssl_verify_command("MANIFEST.digest", "manifest.sig")}
    $ sha256sum --quiet --strict -c MANIFEST.digest
    $ sha256sum --quiet --strict -c MANIFEST.sha256

5. La tête d'arbre signée : format, taille du journal, date (millisecondes
   depuis 1970, UTC), racine de Merkle. Les deux dernières lignes affichent la
   date lisible en UTC et à l'heure de Paris.
    $ {openssl_verify_command("sth.txt", "sth.sig")}
    $ cat sth.txt
    $ date -u -d "@$(( $(sed -n 3p sth.txt) / 1000 ))"
    $ TZ=Europe/Paris date -d "@$(( $(sed -n 3p sth.txt) / 1000 ))"
"""


def envelope_en(root: str, zip_name: str, fingerprint: str) -> str:
    return f"""\
--- ENGLISH ----------------------------------------------------------------

Copy {zip_name} alone into an empty folder, open a terminal in that folder
and type, in order, every line that starts with "$ " (without the "$ ").
Every check that fails says so (FAILED, "Signature Verification Failure", a
difference printed by diff) and exits non-zero: the bundle was then changed
after it was made. Tools: sh, GNU coreutils, openssl 3, unzip, sed and diff
(diffutils). No Python, no Strongroom software.

1. Get ready. If you renamed the file, correct the first line. Replace
   {EXPECTED_PLACEHOLDER_EN} with the fingerprint the box itself shows (not
   one from this file): on its web interface, page "{IDENTITY_PAGE_EN}" (top menu,
   and the foot of every page), line "{SIGNING_LABEL_EN}";
   or on the box, the command "strongroom fingerprint".
    $ Z={zip_name}
    $ R={root}
    $ EXPECTED={EXPECTED_PLACEHOLDER_EN}
    $ unzip -q "$Z"

2. Is the key that signed this bundle the box's key? Expected answer:
   "key.der: OK".
    $ openssl pkey -pubin -in "$R/box.pem" -outform DER -out key.der
    $ echo "$EXPECTED  key.der" | sha256sum -c
   This bundle holds the key {fingerprint};
   that proves nothing until it equals the box's.

3. Is the .zip file the one the box sealed, holding only the files the box
   listed? The seal (the last 88 bytes of the .zip, its comment) is the box's
   signature over the SHA-256 of everything before it. diff must print nothing.
    $ N=$(( $(wc -c < "$Z") - {SEAL_TOTAL} ))
    $ (echo strongroom-zip-v1; head -c "$N" "$Z" | sha256sum | cut -c1-64) > seal.txt
    $ tail -c {SEAL_B64_CHARS} "$Z" | base64 -d > seal.sig
    $ {openssl_verify_command("seal.txt", "seal.sig", '"$R/box.pem"')}
    $ unzip -Z1 "$Z" | LC_ALL=C sort > found.txt
    $ sed "s|^[0-9a-f]*  |$R/|" "$R/MANIFEST.sha256" > listed.txt
    $ printf '%s\\n' "$R/MANIFEST.sha256" "$R/MANIFEST.digest" "$R/manifest.sig" >> listed.txt
    $ LC_ALL=C sort -o listed.txt listed.txt
    $ diff listed.txt found.txt

4. Did the box sign the list of files, and is every file the one it names?
   The box signs MANIFEST.digest, one line giving the SHA-256 of the list
   MANIFEST.sha256 (sha256sum prints nothing when all is well).
    $ cd "$R"
    $ {openssl_verify_command("MANIFEST.digest", "manifest.sig")}
    $ sha256sum --quiet --strict -c MANIFEST.digest
    $ sha256sum --quiet --strict -c MANIFEST.sha256

5. The signed tree head: format, log size, time (milliseconds since 1970,
   UTC), Merkle root. The last two lines show the time in UTC and in Paris.
    $ {openssl_verify_command("sth.txt", "sth.sig")}
    $ cat sth.txt
    $ date -u -d "@$(( $(sed -n 3p sth.txt) / 1000 ))"
    $ TZ=Europe/Paris date -d "@$(( $(sed -n 3p sth.txt) / 1000 ))"
"""


CONSISTENCY_FR = """
8. Deux dossiers viennent-ils du même journal, qui n'a fait que grandir ?
   Ce dossier contient, dans consistency/, chaque tête d'arbre que le boîtier
   a publiée avant lui (exports, certificats) et la preuve (RFC 9162 §2.1.4)
   que son journal la prolonge ; l'étape 7 vérifie ces preuves. Si vous avez
   un dossier plus ancien, son sth.txt doit être identique, octet pour octet,
   au fichier consistency/S<taille>.txt de même taille (<taille> : 2e ligne de
   son sth.txt, sur 10 chiffres), par exemple :
       cmp ../ANCIEN/sth.txt consistency/S0000000042.txt
   Sinon le boîtier a réécrit son journal, et ses propres signatures le prouvent.
"""

CONSISTENCY_EN = """
8. Do two bundles come from one log that only ever grew? This bundle holds,
   in consistency/, every tree head the box published before it (exports,
   certificates) and the proof (RFC 9162 §2.1.4) that its log extends it;
   step 7 checks those proofs. If you hold an older bundle, its sth.txt must
   equal, byte for byte, the file consistency/S<size>.txt of the same size
   (<size>: line 2 of its sth.txt, on 10 digits), for example:
       cmp ../OLDER/sth.txt consistency/S0000000042.txt
   Otherwise the box rewrote its log, and its own signatures prove it.
"""

PROOF_SECTION_FR = f"""
6. Preuves d'inclusion dans le journal (RFC 9162, SHA-256), empreintes des
   messages et signatures des téléphones, pour chaque entrée : le script
   {CHECK_PROOFS_SH_NAME} (fourni et signé dans ce dossier ; lisez-le, 80
   lignes de sh) n'utilise que les coreutils et openssl. Il doit finir par
   « ALL CHECKS PASSED ».
    $ sh {CHECK_PROOFS_SH_NAME}
"""

PROOF_SECTION_EN = f"""
6. Inclusion proofs in the log (RFC 9162, SHA-256), message hashes and the
   phones' signatures, for every entry: {CHECK_PROOFS_SH_NAME} (shipped and
   signed in this bundle; read it, 80 lines of sh) uses only coreutils and
   openssl. It must end with "ALL CHECKS PASSED".
    $ sh {CHECK_PROOFS_SH_NAME}
"""


def verify_instructions(
    root: str,
    fingerprint: str,
    extra_fr: str = "",
    extra_en: str = "",
    *,
    zip_name: str | None = None,
) -> str:
    """VERIFY.txt: the exact commands, in French then English."""
    name = zip_name or f"{root}.zip"
    return f"""\
VÉRIFIER CE DOSSIER SCELLÉ / VERIFYING THIS SEALED BUNDLE
==========================================================

Aucun logiciel Strongroom ni Python n'est nécessaire : sh, coreutils, openssl,
unzip, sed et diff suffisent. No Strongroom software and no Python is needed:
sh, coreutils, openssl, unzip, sed and diff are enough.

{envelope_fr(root, name, fingerprint)}{extra_fr}
Si une seule commande échoue, le dossier a été modifié après sa création.

{envelope_en(root, name, fingerprint)}{extra_en}
If any command fails, the bundle was changed after it was made.
"""


def command_lines(verify_txt: str, section: str = "--- ENGLISH") -> list[str]:
    """The `$ ` lines of one language section, in order (what a reader types)."""
    part = verify_txt.split(section, 1)[1].split("\n--- ", 1)[0]
    return [line.strip()[2:] for line in part.splitlines() if line.strip().startswith("$ ")]
