//  hello.c: the README's Hello World. One anycast channel, one sender, one
//  receiver, one message.
//  Build: cc hello.c $(pkg-config --cflags --libs zchan) -o hello
#include <stdio.h>
#include <stdlib.h>
#include <zchan.h>

int main(void)
{
    zchan_ctx_t *ctx = zchan_ctx_new();
    zchan_t *ch = zchan_anycast_new(ctx, "inproc://greetings", ZCHAN_ANYCAST_CAPACITY);
    if (!ch) {
        fprintf(stderr, "hello: %s\n", zchan_strerror(zchan_errno()));
        return 1;
    }
    zchan_sender_t *tx = zchan_sender_new(ch);
    zchan_receiver_t *rx = zchan_receiver_new(ch, 0);

    zchan_send_str(tx, "Hello, World!", -1);

    char *text = NULL;
    int rc = zchan_recv_str(rx, &text, 1000);
    if (rc == ZCHAN_OK)
        printf("%s\n", text);
    else
        fprintf(stderr, "hello: %s\n", zchan_strerror(rc));
    free(text);

    zchan_receiver_destroy(&rx);
    zchan_sender_destroy(&tx);
    zchan_destroy(&ch);
    zchan_ctx_destroy(&ctx);
    return rc == ZCHAN_OK ? 0 : 1;
}
