import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { S3Error, type S3ErrorCode, s3Status, xmlEscape } from './error.ts';

// Any code point, lone surrogates included, biased to ASCII (fc's 'binary' unit is slow).
const anyChar = fc
  .oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0, max: 0x10ffff }))
  .map((c) => String.fromCodePoint(c));

describe('S3Error', () => {
  it('takes its status from the code table unless told otherwise', () => {
    expect(new S3Error('NoSuchKey', 'x').status).toBe(404);
    expect(new S3Error('SignatureDoesNotMatch', 'x').status).toBe(403);
    expect(new S3Error('PreconditionFailed', 'x').status).toBe(412);
    expect(new S3Error('InvalidRange', 'x').status).toBe(416);
    expect(new S3Error('SlowDown', 'x').status).toBe(503);
    expect(new S3Error('MissingContentLength', 'x').status).toBe(411);
    expect(new S3Error('InvalidURI', 'x', { status: 400 }).status).toBe(400);
    expect(s3Status('SomethingNew')).toBe(500);
    expect(new S3Error('NoSuchKey', 'x')).toBeInstanceOf(Error);
  });

  it('renders the AWS error document with extra fields, resource and request id', () => {
    const e = new S3Error('NoSuchKey', 'The specified key does not exist.', {
      resource: '/b/k',
      extra: { Key: 'k', BucketName: 'b' },
    });
    expect(e.toXML('REQ1')).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>' +
        '<Message>The specified key does not exist.</Message><Key>k</Key>' +
        '<BucketName>b</BucketName><Resource>/b/k</Resource><RequestId>REQ1</RequestId></Error>',
    );
    expect(new S3Error('AccessDenied', 'no').toXML('r', 'host')).toContain(
      '<RequestId>r</RequestId><HostId>host</HostId></Error>',
    );
  });

  it('never renders an empty message (aws-cli crashes on <Message/>)', () => {
    // 'Unheard': a code outside the list, as only a cast (or a bug) could make one.
    for (const code of ['NoSuchKey', 'SignatureDoesNotMatch', 'InternalError', 'Unheard']) {
      const e = new S3Error(code as S3ErrorCode, '   ');
      expect(e.message.trim()).not.toBe('');
      expect(e.toXML('r')).not.toMatch(/<Message>\s*<\/Message>/);
    }
    expect(new S3Error('Unheard' as S3ErrorCode, '').message).toBe('Unheard');
  });

  it('escapes markup in every field and drops field names that are not XML names', () => {
    const e = new S3Error('InvalidArgument', 'a<b & "c"', {
      resource: "/b/<k>'",
      extra: { StringToSign: 'x\n</Error>', 'bad name': 'v', '<x>': 'v' },
    });
    const xml = e.toXML('<id>');
    expect(xml).toContain('<Message>a&lt;b &amp; &quot;c&quot;</Message>');
    expect(xml).toContain('<StringToSign>x\n&lt;/Error&gt;</StringToSign>');
    expect(xml).toContain('<Resource>/b/&lt;k&gt;&apos;</Resource>');
    expect(xml).toContain('<RequestId>&lt;id&gt;</RequestId>');
    expect(xml).not.toContain('bad name');
    expect(xml).not.toContain('<x>');
  });

  it('replaces characters XML 1.0 cannot carry, keeps everything else', () => {
    expect(xmlEscape('a\u0000b\u001fc\ud800d\ufffe')).toBe('a\ufffdb\ufffdc\ufffdd\ufffd');
    expect(xmlEscape('tab\tlf\ncr\r😀ü')).toBe('tab\tlf\ncr&#13;😀ü');
    fc.assert(
      fc.property(fc.string({ unit: anyChar }), (s) => {
        const out = xmlEscape(s);
        // Nothing that would end or open markup survives, and the output is well-formed text.
        return (
          !/[<>"']/.test(out) &&
          !out.replace(/&(amp|lt|gt|quot|apos|#13);/g, '').includes('&') &&
          // biome-ignore lint/suspicious/noControlCharactersInRegex: checking they are gone
          !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(out) &&
          Buffer.from(out, 'utf8').toString('utf8') === out // no lone surrogates
        );
      }),
    );
  });
});
