"""Anthropic client for the end-to-end tests: the official Python SDK against --base-url.

Runs messages.create, messages.stream, messages.count_tokens and models.list (or one of them with
--only) and prints one JSON object on stdout. An API error prints {"error": {...}} and exits 3.
"""

import argparse
import json
import sys

import anthropic


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", default="tollgate-echo-1")
    parser.add_argument("--prompt", default="hello gateway")
    parser.add_argument("--only", choices=["create", "stream", "count_tokens", "models"])
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    client = anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30)
    messages = [{"role": "user", "content": args.prompt}]
    out: dict = {}
    try:
        if args.only in (None, "create"):
            message = client.messages.create(model=args.model, max_tokens=64, messages=messages)
            out["create"] = {
                "text": "".join(block.text for block in message.content if block.type == "text"),
                "model": message.model,
                "input_tokens": message.usage.input_tokens,
                "output_tokens": message.usage.output_tokens,
            }
        if args.only in (None, "stream"):
            chunks = []
            with client.messages.stream(model=args.model, max_tokens=64, messages=messages) as stream:
                for text in stream.text_stream:
                    chunks.append(text)
                final = stream.get_final_message()
            out["stream"] = {
                "text": "".join(chunks),
                "chunks": len(chunks),
                "input_tokens": final.usage.input_tokens,
                "output_tokens": final.usage.output_tokens,
            }
        if args.only in (None, "count_tokens"):
            out["count_tokens"] = client.messages.count_tokens(model=args.model, messages=messages).input_tokens
        if args.only in (None, "models"):
            out["models"] = [model.id for model in client.models.list().data]
    except anthropic.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
        print(json.dumps({"error": {"status": error.status_code, "type": detail.get("type"), "message": detail.get("message")}}))
        sys.exit(3)
    except anthropic.APIError as error:
        print(f"anthropic_client failed: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
