/* ident.c — account identifiers (emails): one spelling per account, and
 * no account that only looks like another.
 *
 * Emails were lower-cased byte by byte, so "ÉLODIE@" and "élodie@", NFD and
 * NFC "é", full-width "ＡＤＭＩＮ@", the Kelvin sign in "Kevin" and names
 * holding a zero-width space were all different accounts. Following the
 * IETF PRECIS rules for usernames (RFC 8264 IdentifierClass, RFC 8265
 * §3.4 UsernameCaseMapped) an identifier here is prepared in three steps:
 *
 *   1. refused outright when it is not UTF-8 or holds a character that is
 *      invisible or changes display: controls (Cc), format characters (Cf:
 *      zero-width, bidi controls), Default_Ignorable_Code_Point, bidi
 *      controls, separators and white space, unassigned, private-use and
 *      noncharacter code points (RFC 8264 §9.11-9.14, UAX #31);
 *   2. mapped with Unicode's NFKC_Casefold (UAX #15, UTS #46): width
 *      mapping (RFC 8265 §3.4.1), case folding (§3.4.3; full folding, so
 *      "ß" is "ss") and compatibility normalisation (NFKC implies the NFC
 *      of §3.4.4); the Kelvin sign becomes "k", "Ａ" becomes "a";
 *   3. checked again: outside ASCII only letters, marks and digits are
 *      allowed (IdentifierClass: no symbols or punctuation), with exactly
 *      one "@" and something either side.
 *
 * Look-alikes: ICU's spoof checker (UTS #39) gives each prepared email a
 * skeleton (the dotless "ı" and "i" share one, as do "rn" and "m"); the
 * users table keeps it under a unique index, so a registration that looks
 * like an existing account is refused. A local part or domain mixing
 * scripts beyond UTS #39's "moderately restrictive" level (Latin with
 * Cyrillic, say) is refused too.
 *
 * ICU (libicu-dev) does the Unicode work: its tables follow the Unicode
 * version of the ICU in use. Thread-safe: the normaliser and the spoof
 * checker are made once and then only read. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "core/error.h"
#include "core/log.h"
#include "gate/gate.h"

#define U16_MAX 512 /* UTF-16 units: 254 bytes of UTF-8 never need more */

static const UNormalizer2 *nfkc_cf;
static USpoofChecker *spoof;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void setup(void) {
  UErrorCode e = U_ZERO_ERROR;
  nfkc_cf = unorm2_getNFKCCasefoldInstance(&e);
  if (U_FAILURE(e))
    nfkc_cf = NULL;
  e = U_ZERO_ERROR;
  spoof = uspoof_open(&e);
  if (U_SUCCESS(e))
    uspoof_setChecks(spoof, USPOOF_RESTRICTION_LEVEL | USPOOF_INVISIBLE | USPOOF_MIXED_NUMBERS,
                     &e);
  if (U_SUCCESS(e))
    uspoof_setRestrictionLevel(spoof, USPOOF_MODERATELY_RESTRICTIVE);
  if (U_FAILURE(e)) {
    uspoof_close(spoof);
    spoof = NULL;
  }
}

/* Step 1: characters refused wherever they are. */
static bool invisible_or_control(UChar32 c) {
  switch (u_charType(c)) {
  case U_CONTROL_CHAR:
  case U_FORMAT_CHAR:
  case U_UNASSIGNED:
  case U_PRIVATE_USE_CHAR:
  case U_SURROGATE:
  case U_SPACE_SEPARATOR:
  case U_LINE_SEPARATOR:
  case U_PARAGRAPH_SEPARATOR:
    return true;
  default:
    break;
  }
  return u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT) ||
         u_hasBinaryProperty(c, UCHAR_BIDI_CONTROL) ||
         u_hasBinaryProperty(c, UCHAR_NONCHARACTER_CODE_POINT) ||
         u_hasBinaryProperty(c, UCHAR_WHITE_SPACE);
}

/* Step 3: what an identifier may hold after mapping. */
static bool allowed_after_mapping(UChar32 c) {
  if (c < 0x80)
    return c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\\';
  if (invisible_or_control(c))
    return false;
  switch (u_charType(c)) {
  case U_LOWERCASE_LETTER:
  case U_UPPERCASE_LETTER:
  case U_TITLECASE_LETTER:
  case U_MODIFIER_LETTER:
  case U_OTHER_LETTER:
  case U_NON_SPACING_MARK:
  case U_COMBINING_SPACING_MARK:
  case U_DECIMAL_DIGIT_NUMBER:
    return true;
  default:
    return false; /* symbols, punctuation, enclosing marks, other numbers */
  }
}

int gate_email_prepare(const char *in, char *out, size_t outlen, char *why, size_t whylen) {
  pthread_once(&once, setup);
  UChar src[U16_MAX], dst[U16_MAX];
  int32_t n = 0, m = 0;
  UErrorCode e = U_ZERO_ERROR;
  size_t inlen = strlen(in);
  if (!nfkc_cf) {
    snprintf(why, whylen, "cannot check emails now: Unicode data is missing");
    return GROVE_ESTORE;
  }
  if (inlen < 3 || inlen > 254) {
    snprintf(why, whylen, "email must have 3 to 254 bytes");
    return GROVE_EINVAL;
  }
  u_strFromUTF8(src, U16_MAX, &n, in, (int32_t)inlen, &e);
  if (U_FAILURE(e)) {
    snprintf(why, whylen, "email is not valid UTF-8");
    return GROVE_EINVAL;
  }
  for (int32_t i = 0; i < n;) {
    UChar32 c;
    U16_NEXT(src, i, n, c);
    if (c < 0x80 ? (c <= 0x20 || c == 0x7f) : invisible_or_control(c)) {
      snprintf(why, whylen,
               "email holds an invisible, control or bidi character (U+%04X); type it plainly",
               (unsigned)c);
      return GROVE_EINVAL;
    }
  }
  m = unorm2_normalize(nfkc_cf, src, n, dst, U16_MAX, &e);
  if (U_FAILURE(e) || m >= U16_MAX) {
    snprintf(why, whylen, "email is too long");
    return GROVE_EINVAL;
  }
  int ats = 0;
  int32_t at = -1;
  for (int32_t i = 0; i < m;) {
    int32_t start = i;
    UChar32 c;
    U16_NEXT(dst, i, m, c);
    if (c == '@') {
      ats++;
      at = start;
    } else if (!allowed_after_mapping(c)) {
      snprintf(why, whylen, "email may not hold U+%04X: outside ASCII only letters, marks and "
                            "digits are allowed", (unsigned)c);
      return GROVE_EINVAL;
    }
  }
  if (ats != 1 || at == 0 || at == m - 1) {
    snprintf(why, whylen, "email must have one '@' with something either side");
    return GROVE_EINVAL;
  }
  int32_t len = 0;
  e = U_ZERO_ERROR;
  u_strToUTF8(out, (int32_t)outlen, &len, dst, m, &e);
  if (U_FAILURE(e) || e == U_STRING_NOT_TERMINATED_WARNING || len > 254) {
    snprintf(why, whylen, "email must have at most 254 bytes");
    return GROVE_EINVAL;
  }
  return 0;
}

/* Mixed scripts beyond "moderately restrictive" in one part. */
static bool mixed_scripts(const char *s, int32_t n) {
  UErrorCode e = U_ZERO_ERROR;
  int32_t r = uspoof_check2UTF8(spoof, s, n, NULL, &e);
  return U_FAILURE(e) || r != 0;
}

int gate_email_skeleton(const char *prepared, char *out, size_t outlen, char *why,
                        size_t whylen) {
  pthread_once(&once, setup);
  if (!spoof) {
    snprintf(why, whylen, "cannot check emails now: Unicode data is missing");
    return GROVE_ESTORE;
  }
  const char *at = strchr(prepared, '@');
  if (!at) {
    snprintf(why, whylen, "email must have one '@' with something either side");
    return GROVE_EINVAL;
  }
  if (mixed_scripts(prepared, (int32_t)(at - prepared)) ||
      mixed_scripts(at + 1, (int32_t)strlen(at + 1))) {
    snprintf(why, whylen, "email mixes scripts that look alike (such as Latin with Cyrillic or "
                          "Greek) or digits of different systems");
    return GROVE_EINVAL;
  }
  UErrorCode e = U_ZERO_ERROR;
  int32_t n = uspoof_getSkeletonUTF8(spoof, 0, prepared, -1, out, (int32_t)outlen, &e);
  if (U_FAILURE(e) || n >= (int32_t)outlen) {
    snprintf(why, whylen, "email is too long");
    return GROVE_EINVAL;
  }
  return 0;
}

/* ---- stored identifiers ---------------------------------------------------- */

void gate_identifiers_upgrade(struct store *st) {
  char err[256];
  struct store_rows *rows;
  if (store_query(st, "SELECT id, email FROM users WHERE email_skeleton IS NULL ORDER BY "
                      "created_at, id", NULL, 0, &rows, err, sizeof err)) {
    log_error(NULL, "cannot read stored emails to upgrade them", "error=\"%s\"", err);
    return;
  }
  int done = 0, left = 0;
  for (int i = 0; i < rows->nrows; i++) {
    const char *id = store_rows_get(rows, i, "id"), *email = store_rows_get(rows, i, "email");
    char mail[256], skel[1024], why[200];
    if (gate_email_prepare(email, mail, sizeof mail, why, sizeof why) ||
        gate_email_skeleton(mail, skel, sizeof skel, why, sizeof why)) {
      log_warn(NULL, "stored email left as it is: it cannot be prepared; the account signs in "
               "with it as stored", "user=%s email=\"%s\" why=\"%s\"", id, email, why);
      left++;
      continue;
    }
    const char *p[] = {mail, skel, id};
    int rc = store_query(st, "UPDATE users SET email = $1, email_skeleton = $2 WHERE id = $3",
                         p, 3, NULL, err, sizeof err);
    if (rc == GROVE_EEXIST) {
      /* never merge two accounts: say which one it collides with */
      struct store_rows *other = NULL;
      const char *q[] = {mail, skel, id};
      store_query(st, "SELECT id FROM users WHERE (email = $1 OR email_skeleton = $2) AND "
                      "id <> $3", q, 3, &other, err, sizeof err);
      const char *oid = other ? store_rows_get(other, 0, "id") : NULL;
      log_warn(NULL, "stored email left as it is: prepared, it would be the same as, or look "
               "like, another account's; the account signs in with it as stored",
               "user=%s email=\"%s\" prepared=\"%s\" other_user=%s", id, email, mail,
               oid ? oid : "?");
      store_rows_free(other);
      left++;
    } else if (rc) {
      log_error(NULL, "cannot upgrade a stored email", "user=%s error=\"%s\"", id, err);
      left++;
    } else {
      done++;
    }
  }
  if (done || left)
    log_info(NULL, "stored emails upgraded to prepared identifiers", "upgraded=%d left=%d", done,
             left);
  store_rows_free(rows);
}
